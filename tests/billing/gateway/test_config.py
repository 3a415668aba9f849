"""billing.services.gateway_calls.config: every gateway setting is read from Django's settings, where
``orgbilling/settings/gateway.py`` always puts it; a missing one is an error, not a default."""

import pytest
from django.conf import settings as django_settings

from billing.services.gateway_calls.config import max_call_seconds, setting


def test_a_gateway_setting_is_read_at_each_use(settings):
    settings.LLM_DAILY_QUOTA_PERCENT = 7

    assert setting("LLM_DAILY_QUOTA_PERCENT") == 7


def test_a_gateway_setting_missing_from_the_settings_is_an_error_not_a_silent_default(settings):
    del settings.LLM_MAX_CALL_SECONDS

    with pytest.raises(AttributeError):
        setting("LLM_MAX_CALL_SECONDS")
    with pytest.raises(AttributeError):
        max_call_seconds()


def test_every_gateway_setting_is_in_the_projects_settings():
    from orgbilling.settings import gateway

    names = [name for name in vars(gateway) if name.isupper()]
    assert names
    assert [name for name in names if not hasattr(django_settings, name)] == []
