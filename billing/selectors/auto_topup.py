"""Reads of an organization's auto top-up settings."""

from billing.models import AutoTopUpSettings


def auto_topup_settings_of(*, org_id: str) -> AutoTopUpSettings | None:
    """The organization's saved auto top-up settings, or None before they are saved once."""
    return AutoTopUpSettings.objects.filter(org_id=org_id).first()
