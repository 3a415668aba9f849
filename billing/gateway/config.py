"""The gateway's settings, read at each use so a change (or a test's override) applies at once.

They live in ``orgbilling/settings/gateway.py``; a project that has not star-imported that
module still gets its defaults.
"""

from typing import Any

from django.conf import settings

from orgbilling.settings import gateway as defaults


def setting(name: str) -> Any:
    return getattr(settings, name, getattr(defaults, name))
