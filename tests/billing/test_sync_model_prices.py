"""sync_model_prices: ModelPrice seeded and refreshed from the prices genai-prices ships
(offline), idempotent, never overwriting a price staff edited in the admin."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from billing.models import AuditEvent, CreditUsageAttribution, ModelPrice
from billing.pricing import price_for
from billing.services import reserve_credits
from billing.services.gateway_calls.holds import Admission, settle_call

pytestmark = pytest.mark.django_db


def sync(*args: str) -> str:
    out = StringIO()
    call_command("sync_model_prices", "--no-progress", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def snapshot() -> dict[str, tuple]:
    return {
        row.model: (
            row.input_credits_per_million,
            row.output_credits_per_million,
            row.cache_read_credits_per_million,
            row.cache_write_credits_per_million,
            row.is_active,
            row.price_overridden,
            row.updated_at,
        )
        for row in ModelPrice.objects.all()
    }


def test_sync_seeds_prices_in_credits_from_the_package_data():
    sync("--provider", "openai", "--provider", "anthropic")

    gpt = ModelPrice.objects.get(model="gpt-4o")
    # $2.50 / $10 / $1.25 per million tokens; 1 credit = $0.01
    assert (gpt.input_credits_per_million, gpt.output_credits_per_million) == (Decimal(250), Decimal(1000))
    assert gpt.cache_read_credits_per_million == Decimal(125)
    assert gpt.is_active is False  # a price alone does not open a model
    assert gpt.price_source.startswith("genai-prices 0.2.5 openai/gpt-4o")
    haiku = ModelPrice.objects.get(model="claude-3-5-haiku-latest")
    assert (haiku.cache_read_credits_per_million, haiku.cache_write_credits_per_million) == (
        Decimal(8),
        Decimal(100),
    )


def test_sync_is_idempotent():
    sync("--provider", "openai")
    first = snapshot()
    audits = AuditEvent.objects.count()

    out = sync("--provider", "openai")

    assert snapshot() == first
    assert AuditEvent.objects.count() == audits
    assert " create" not in out
    assert " update" not in out


def test_sync_never_overwrites_an_admin_override(admin_client):
    sync("--provider", "openai")
    gpt = ModelPrice.objects.get(model="gpt-4o")
    form = {
        "model": "gpt-4o",
        "input_credits_per_million": "300",
        "output_credits_per_million": "1000",
        "cache_read_credits_per_million": "125",
        "image_credits": "0",
        "image_prices": "{}",
        "max_output_tokens": "4096",
        "is_active": "on",
    }
    response = admin_client.post(reverse("admin:billing_modelprice_change", args=[gpt.pk]), form)
    assert response.status_code == 302
    gpt.refresh_from_db()
    assert (gpt.input_credits_per_million, gpt.price_overridden) == (Decimal(300), True)

    out = sync("--provider", "openai")

    gpt.refresh_from_db()
    assert gpt.input_credits_per_million == Decimal(300)
    assert "overridden gpt-4o: input_credits_per_million: 300.000 -> 250.000" in out


def test_sync_updates_a_changed_price_and_dry_run_only_shows_the_difference():
    sync("--provider", "openai")
    ModelPrice.objects.filter(model="gpt-4o").update(input_credits_per_million=Decimal(200))

    out = sync("--provider", "openai", "--dry-run")

    assert "update gpt-4o: input_credits_per_million: 200.000 -> 250.000" in out
    assert ModelPrice.objects.get(model="gpt-4o").input_credits_per_million == Decimal(200)
    sync("--provider", "openai")
    assert ModelPrice.objects.get(model="gpt-4o").input_credits_per_million == Decimal(250)


def test_a_dry_run_on_an_empty_table_writes_nothing():
    out = sync("--provider", "openai", "--dry-run")

    assert "create gpt-4o:" in out
    assert ModelPrice.objects.count() == 0


def test_an_unknown_provider_is_refused():
    with pytest.raises(CommandError, match="unknown provider"):
        sync("--provider", "no-such-provider")


def test_a_price_change_never_rewrites_a_past_charge(make_funded_member):
    # given a call charged at the synced price
    org, user, _ = make_funded_member(pool=100, allocation=50)
    sync("--provider", "openai")
    ModelPrice.objects.filter(model="gpt-4o").update(is_active=True)
    price = price_for("gpt-4o")
    hold = reserve_credits(user=user, org_id=org.id, amount=1000, request_id="past-call")
    admission = Admission(
        request_id="past-call", user=user, org_id=org.id, api_key_id=None, model="gpt-4o", price=price,
        reservation_id=hold.reservation_id, held=hold.amount, remaining_after_hold=0, byok=False,
        service_type="llm", estimated_input_tokens=0, quota=None,
    )  # fmt: skip
    settle_call(admission, cost=price.token_cost(input_tokens=1000, output_tokens=0), input_tokens=1000)
    before = CreditUsageAttribution.objects.values().get()

    # when the price changes twice (an edit, then a sync back)
    ModelPrice.objects.filter(model="gpt-4o").update(input_credits_per_million=Decimal(1))
    sync("--provider", "openai")

    # then the past row is untouched
    assert ModelPrice.objects.get(model="gpt-4o").input_credits_per_million == Decimal(250)
    assert CreditUsageAttribution.objects.values().get() == before
    assert before["request_metadata"]["price"]["input_credits_per_million"] == "250.000"
