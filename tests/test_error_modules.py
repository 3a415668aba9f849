"""Every public API error lives in its app's errors module (issue 12 §4): one place to read
every code a client can get back."""

import importlib
import pkgutil

import billing
import organizations
import orgbilling
from orgbilling.errors import ApplicationError

ERRORS_MODULES = {"billing.errors", "organizations.errors", "orgbilling.errors"}


def _import_every_module() -> None:
    for package in (billing, organizations, orgbilling):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if ".migrations" in module.name or module.name.endswith((".wsgi", ".asgi")):
                continue
            if module.name.startswith("orgbilling.settings."):
                continue  # each settings module is a whole configuration of its own
            importlib.import_module(module.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_api_error_class_is_defined_in_an_errors_module():
    _import_every_module()
    ours = {
        c
        for c in _subclasses(ApplicationError)
        if c.__module__.split(".")[0] in {"billing", "organizations", "orgbilling"}
    }

    assert len(ours) > 40
    assert sorted(f"{c.__module__}.{c.__name__}" for c in ours if c.__module__ not in ERRORS_MODULES) == []
