"""Money-moving portal forms run once per rendered form (``billing/portal/once.py``)."""

import threading

import pytest
from django.db import connection
from django.test import Client

from billing.models import UserCreditAllocation
from billing.services import add_credits_to_pool, allocate_credits_to_user
from organizations.services import add_member
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import mc, pool_of


def _acme():
    admin = UserFactory(username="boss")
    org = OrganizationFactory(id="acme", org_name="Acme", created_by=admin)
    add_credits_to_pool(org_id=org.id, amount=mc(1000), actor_label="test")
    member = UserFactory(username="mia")
    add_member(org_id=org.id, user=member, actor_label="test")
    allocate_credits_to_user(org_id=org.id, user=member, amount=mc(100), actor_label="test")
    return org, admin


def _allocated(org) -> int:
    return UserCreditAllocation.objects.get(org=org, user__username="mia", is_active=True).allocated_credits


def _form_key(client: Client) -> str:
    body = client.get("/portal/orgs/acme/").content.decode()
    marker = 'name="form_key" value="'
    start = body.index(marker) + len(marker)
    return body[start : body.index('"', start)]


@pytest.mark.django_db
def test_the_same_allocate_form_sent_twice_allocates_once(client: Client) -> None:
    org, admin = _acme()
    client.force_login(admin)
    form = {"user_id": "mia", "credits": "50", "form_key": _form_key(client)}

    first = client.post("/portal/orgs/acme/allocate", form, follow=True)
    second = client.post("/portal/orgs/acme/allocate", form, follow=True)

    assert "Credits allocated to mia." in first.content.decode()
    assert "Already done: that form was sent once." in second.content.decode()
    assert _allocated(org) == mc(150)
    assert pool_of(org).allocated_credits == mc(150)


@pytest.mark.django_db
def test_each_render_gives_the_forms_new_keys(client: Client) -> None:
    _, admin = _acme()
    client.force_login(admin)

    assert _form_key(client) != _form_key(client)


@pytest.mark.django_db(transaction=True)
def test_a_double_click_racing_on_two_connections_allocates_once() -> None:
    org, admin = _acme()
    setup = Client()
    setup.force_login(admin)
    form = {"user_id": "mia", "credits": "50", "form_key": _form_key(setup)}
    session_cookie = setup.cookies
    start = threading.Barrier(2)
    statuses: list[int] = []

    def click() -> None:
        browser = Client()
        browser.cookies = session_cookie
        start.wait()
        try:
            statuses.append(browser.post("/portal/orgs/acme/allocate", form).status_code)
        finally:
            connection.close()  # this thread's own connection, or the database cannot be dropped

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()

    assert statuses == [302, 302]
    assert _allocated(org) == mc(150)
