"""Where the organizations layer meets the credits it does not own.

``organizations`` never imports ``billing``: creating an org needs its credit pool, removing a
member returns their allocation to the pool, and the profile shows who pays for the user's
requests. Those steps are asked of the ``MemberCredits`` that the billing app registers when
it is ready (``billing.services.members``). They run inside the caller's transaction, so a
refusal (credits on hold) rolls the whole membership change back, as before.

Fail closed: with nothing registered those writes raise instead of leaving an org without a
pool or credits stranded on a removed member.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured

from organizations.models import Organization, User


@dataclass(frozen=True)
class ReturnedCredits:
    """What removing a member gave back: the revoked allocation (None without one) and its
    unused millicredits, now in the pool."""

    allocation: Any
    returned_to_pool: int


@dataclass(frozen=True)
class PayingOrg:
    """Who pays for a user's requests: ``org_id`` None means the user's individual credits."""

    org_id: str | None
    source: str


class MemberCredits(Protocol):
    def create_pool(self, org: Organization) -> None:
        """Create the new org's empty credit pool."""

    def lock_pool(self, org_id: str) -> None:
        """Take the org's pool lock (level 1: before any membership row)."""

    def return_member_credits(
        self, *, org_id: str, user: User, actor: User | None, actor_label: str
    ) -> ReturnedCredits:
        """Revoke the member's active allocation, if any; its unused credits return to the pool."""

    def paying_org(self, *, user: User, requested_org_id: str | None = None) -> PayingOrg:
        """Who pays for the user's requests; raises the refusal billing would answer."""


_registered: MemberCredits | None = None


def register_member_credits(credits: MemberCredits) -> None:
    global _registered
    _registered = credits


def member_credits() -> MemberCredits:
    if _registered is None:
        raise ImproperlyConfigured("No MemberCredits is registered (is the billing app installed?)")
    return _registered
