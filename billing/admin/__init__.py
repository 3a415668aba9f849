"""Admin for the billing app, one module per concern, mirroring ``billing.models``: importing
this package (Django's admin autodiscovery does) registers every billing model.

Balances show in credits and are never editable here: pools, allocations and ledger rows are
read-only, and credits move only through the actions of ``billing.admin.actions``, which call the
ledger services. ``base`` holds the read-only admins and the credits column every module uses;
``forms`` the actions' forms. Modules import ``base``/``forms``/``actions``, never each other.
"""

from billing.admin import (  # noqa: F401  (imported to register their admins)
    audit,
    balances,
    grants,
    individual,
    ledger,
    organizations,
    payments,
    prices,
    reconciliation,
    requests,
    subscriptions,
    usage,
    webhooks,
)
