"""Rollups and usage alerts are viewable, never added, changed or deleted, in the admin."""

import pytest
import time_machine
from django.urls import reverse

from billing.models import UsageAlert, UsageDailyRollup
from billing.services import deduct_credits
from billing.services.alerts import evaluate_usage_alerts
from billing.services.rollups import rollup_usage
from tests.billing.tasks.conftest import at
from tests.factories import UserFactory
from tests.helpers import mc

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [UsageDailyRollup, UsageAlert])
def test_rows_are_listed_and_read_only(client, make_funded_member, model):
    with time_machine.travel(at("2026-02-03T10:00:00+00:00"), tick=False):
        org, user, _ = make_funded_member(pool=100, allocation=10)
        deduct_credits(user=user, org_id=org.id, amount=mc(9), request_id="r", service_name="gpt-x")
        rollup_usage()
        evaluate_usage_alerts()
    row = model.objects.first()
    assert row is not None
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    meta = model._meta
    changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    assert org.id in changelist.content.decode()
    change_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
    assert client.get(change_url).status_code == 200
    assert client.post(change_url, {}).status_code == 403
    assert client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 403
    delete_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[row.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=row.pk).exists()
