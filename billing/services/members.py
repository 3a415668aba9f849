"""The credits side of organizations' membership writes (``organizations.credits``): the
billing app registers ``LEDGER_MEMBER_CREDITS`` when it is ready, so ``organizations`` creates
pools, returns a removed member's credits and names who pays without importing billing."""

from billing.ledger.locks import lock_pool
from billing.ledger.pool import revoke_allocation
from billing.models import OrganizationCreditPool, UserCreditAllocation
from billing.services.context import resolve_billing_context
from organizations.credits import PayingOrg, ReturnedCredits
from organizations.models import Organization, User


class LedgerMemberCredits:
    def create_pool(self, org: Organization) -> None:
        OrganizationCreditPool.objects.create(org=org)

    def lock_pool(self, org_id: str) -> None:
        lock_pool(org_id)

    def return_member_credits(
        self, *, org_id: str, user: User, actor: User | None, actor_label: str
    ) -> ReturnedCredits:
        # The caller holds the pool lock: every allocation of the org is created or revoked
        # under it, so the existence check stays true until commit.
        if not UserCreditAllocation.objects.filter(org_id=org_id, user=user, is_active=True).exists():
            return ReturnedCredits(allocation=None, returned_to_pool=0)
        # A savepoint inside the caller's transaction: if it refuses, the whole removal rolls back.
        change = revoke_allocation(org_id=org_id, user=user, actor=actor, actor_label=actor_label)
        return ReturnedCredits(allocation=change.allocation, returned_to_pool=change.returned_to_pool)

    def paying_org(self, *, user: User, requested_org_id: str | None = None) -> PayingOrg:
        context = resolve_billing_context(user=user, requested_org_id=requested_org_id)
        return PayingOrg(org_id=context.org_id, source=context.source)


LEDGER_MEMBER_CREDITS = LedgerMemberCredits()
