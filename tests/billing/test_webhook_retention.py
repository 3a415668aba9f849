"""Stored webhook events: the lookup made under a purchase row lock is indexed, and processed
events past their retention are pruned (issue 11 §4)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import WebhookEvent
from billing.payments.purchases import SESSION_EVENTS, _stored_stripe_events
from billing.payments.webhook_events import prune_webhook_events
from billing.tasks import prune_webhook_events as prune_task
from orgbilling.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def stripe_event(n: int, *, status: str, days_old: int, payment_intent: str = "pi_x") -> WebhookEvent:
    event = WebhookEvent.objects.create(
        provider=WebhookEvent.Provider.STRIPE,
        event_id=f"evt_{n}",
        event_type="checkout.session.completed",
        payload={"data": {"object": {"id": f"cs_{n}", "payment_intent": payment_intent}}},
        status=status,
    )
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(days=days_old))
    return event


def test_the_payment_intent_lookup_uses_its_index():
    for n in range(50):
        stripe_event(n, status="processed", days_old=1, payment_intent=f"pi_{n}")
    query = _stored_stripe_events(types=SESSION_EVENTS, payment_intent="pi_7")
    with connection.cursor() as cursor:
        # The plan follows the table's statistics: without fresh ones it depends on what earlier
        # tests in the same database left behind (under xdist it picked another index).
        cursor.execute("ANALYZE webhook_events")
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "webhook_events_payment_intent" in plan, plan
    assert [e.event_id for e in query] == ["evt_7"]


def test_processed_and_ignored_events_past_retention_are_pruned_the_rest_kept():
    old_done = [
        stripe_event(1, status="processed", days_old=100),
        stripe_event(2, status="ignored", days_old=91),
    ]
    kept = [
        stripe_event(3, status="processed", days_old=89),
        stripe_event(4, status="failed", days_old=200),
        stripe_event(5, status="received", days_old=200),
    ]

    assert prune_webhook_events(older_than_days=90) == 2

    remaining = set(WebhookEvent.objects.values_list("pk", flat=True))
    assert remaining == {e.pk for e in kept}
    assert not remaining & {e.pk for e in old_done}


def test_the_daily_task_prunes_with_the_configured_retention(settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 10
    stripe_event(1, status="processed", days_old=11)
    stripe_event(2, status="processed", days_old=9)

    assert prune_task.apply().get() == {"pruned": 1}
    assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_2"]


def test_a_retention_under_a_day_is_refused():
    stripe_event(1, status="processed", days_old=5)
    with pytest.raises(ValidationFailed):
        prune_webhook_events(older_than_days=0)
    assert WebhookEvent.objects.count() == 1
