"""Every public API error lives in its app's errors module (issue 12 §4): one place to read
every code a client can get back."""

from orgbilling.errors import ApplicationError
from tests.helpers import import_every_module

ERRORS_MODULES = {"billing.errors", "organizations.errors", "orgbilling.errors"}


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_api_error_class_is_defined_in_an_errors_module():
    import_every_module()
    ours = {
        c
        for c in _subclasses(ApplicationError)
        if c.__module__.split(".")[0] in {"billing", "organizations", "orgbilling"}
    }

    assert len(ours) > 40
    assert sorted(f"{c.__module__}.{c.__name__}" for c in ours if c.__module__ not in ERRORS_MODULES) == []
