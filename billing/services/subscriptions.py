"""Subscription lifecycle: create (with the organization when new), change plan, cancel.

The external backend (``billing.backends``) is called between two transactions, never while a
row is locked: the subscription is written ``pending`` first, then activated once the backend
answered, together with its initial credits (one transaction: subscription row, then pool). A
backend failure leaves the ``pending`` row (retried later, up to ``LAGO_MAX_ACTIVATION_ATTEMPTS``)
and raises ``BillingBackendUnavailable``; a backend refusal (``BillingBackendRejected``) ends it
``failed``. Nothing else is half-written.

Plan changes and cancellations re-check the row under its lock after the backend call: whoever
lost a race is refused (``Conflict``) or, for a cancel of an ended subscription, succeeds as a
no-op; a backend call that may have re-subscribed behind a concurrent cancel is undone.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from billing.audit import record_audit_event
from billing.backends import BackendSubscription, SubscriptionBackend, get_subscription_backend
from billing.errors import (
    BillingBackendRejected,
    BillingBackendUnavailable,
    DuplicateSubscription,
    OrganizationNotFound,
    PlanUnchanged,
    SubscriptionNotFound,
    UnknownPlan,
)
from billing.ledger.pool import add_credits_to_pool
from billing.models import (
    CreditGrant,
    OrganizationCreditPool,
    OrganizationSubscription,
    OrgBillingHistory,
    Plan,
)
from billing.models.subscriptions import LIVE_SUBSCRIPTION_STATUSES
from billing.money import validate_millicredits
from billing.services.gateway_calls.quotas import forget_org_plan
from organizations.models import Organization, OrganizationMember, User
from organizations.permissions import acts_as_system_admin
from organizations.services import create_organization
from orgbilling.errors import Conflict, Forbidden

logger = logging.getLogger(__name__)

LIVE = LIVE_SUBSCRIPTION_STATUSES
ENDED = (OrganizationSubscription.Status.CANCELED, OrganizationSubscription.Status.TERMINATED)
# Attempts of a cancel whose row keeps changing under it (a concurrent plan change each time).
CANCEL_ROUNDS = 3


@dataclass(frozen=True)
class SubscriptionChange:
    subscription: OrganizationSubscription
    org: Organization
    pool: OrganizationCreditPool
    org_created: bool = False


def _plan(plan_code: str) -> Plan:
    plan = Plan.objects.filter(plan_code=plan_code, is_active=True).first()
    if plan is None:
        raise UnknownPlan(details={"plan_code": plan_code})
    return plan


def plan_changes_on_commit(org_id: str) -> None:
    """The org's live plan changes in this transaction: its gateway quota and tier limits follow
    from the next call once it commits (the cached plan is dropped)."""
    transaction.on_commit(lambda: forget_org_plan(org_id))


def _history(sub: OrganizationSubscription, event: str, description: str) -> None:
    plan_changes_on_commit(sub.org_id)
    OrgBillingHistory.objects.create(
        org_id=sub.org_id,
        event_type=OrgBillingHistory.EventType.SUBSCRIPTION_CHANGE,
        external_id=f"subscription-{sub.pk}-{event}",
        amount=sub.plan.monthly_price,
        currency=sub.plan.currency,
        status=sub.status,
        description=description,
        metadata={"plan_code": sub.plan.plan_code, "event": event},
        occurred_at=timezone.now(),
    )


def create_subscription(
    *,
    org_id: str,
    plan_code: str,
    owner: User,
    actor: User | None = None,
    actor_label: str = "",
    org_name: str = "",
    billing_email: str = "",
    initial_credits: int | None = None,
) -> SubscriptionChange:
    """Subscribe ``org_id`` to ``plan_code``. A new organization is created with ``owner`` as its
    admin; an existing one must be administered by ``owner`` (or the actor be staff).
    ``initial_credits`` (millicredits) are granted into the pool once the subscription is live."""
    plan = _plan(plan_code)
    if initial_credits is not None:
        validate_millicredits(initial_credits)
    with transaction.atomic():
        org = Organization.objects.select_for_update().filter(pk=org_id).first()
        org_created = org is None
        if org is None:
            org = create_organization(
                org_id=org_id,
                org_name=org_name or org_id,
                created_by=owner,
                billing_email=billing_email,
                actor_label=actor_label,
                # A system admin subscribing an org for someone makes them its admin, not their payer.
                make_default=actor is None or actor.pk == owner.pk,
            )
        elif not (actor is not None and acts_as_system_admin(actor, org_id=org_id)):
            membership = OrganizationMember.objects.filter(
                org=org, user=owner, status=OrganizationMember.Status.ACTIVE
            ).first()
            if membership is None:
                # Not the caller's org: the id is simply taken (no more is said about it).
                raise Conflict("This organization id is taken.", details={"org_id": org_id})
            if membership.role != OrganizationMember.Role.ADMIN:
                raise Forbidden("Only organization admins can subscribe it.", details={"org_id": org_id})
        live = OrganizationSubscription.objects.filter(org=org, status__in=LIVE).first()
        if live is not None and not _resumable(live, plan=plan, initial_credits=initial_credits):
            raise DuplicateSubscription(details={"org_id": org_id})
        if live is None:
            subscription = OrganizationSubscription.objects.create(
                org=org, plan=plan, initial_credits=initial_credits or None
            )
            # Our id of the subscription at the backend, fixed before the first call so every
            # retry sends the same one (Lago answers a repeated create with the same subscription).
            subscription.lago_external_id = f"{org.id}-{subscription.pk}"
            subscription.save(update_fields=["lago_external_id", "updated_at"])
            plan_changes_on_commit(org.id)  # pending is live: its plan applies now
            record_audit_event(
                action="subscription.requested",
                actor=actor or owner,
                actor_label=actor_label,
                org_id=org.id,
                target_type="subscription",
                target_id=subscription.pk,
                metadata={"plan_code": plan_code, "org_created": org_created},
            )
        else:
            # The same request again after the backend failed: finish that subscription.
            subscription = live
    subscription = complete_pending_subscription(
        subscription_id=subscription.pk, actor=actor or owner, actor_label=actor_label
    )
    pool = OrganizationCreditPool.objects.get(org=org)
    return SubscriptionChange(subscription=subscription, org=org, pool=pool, org_created=org_created)


def _resumable(live: OrganizationSubscription, *, plan: Plan, initial_credits: int | None) -> bool:
    return (
        live.status == OrganizationSubscription.Status.PENDING
        and live.plan_id == plan.pk
        and (live.initial_credits or None) == (initial_credits or None)
    )


def complete_pending_subscription(
    *, subscription_id: int, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """Start a subscription at the backend if still ``pending`` (its initial credits are granted
    with the activation); grant them if an older activation did not. Safe to call again."""
    subscription = OrganizationSubscription.objects.select_related("org", "plan").get(pk=subscription_id)
    if subscription.status == OrganizationSubscription.Status.PENDING:
        subscription = activate_subscription(subscription=subscription, actor=actor, actor_label=actor_label)
    grant_initial_credits(subscription=subscription, actor=actor, actor_label=actor_label)
    return subscription


def activate_subscription(
    *, subscription: OrganizationSubscription, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """Start a ``pending`` subscription at the backend and mark it active (retry-safe).

    A backend failure is counted on the row (``activation_attempts``, ``last_backend_error``)
    and re-raised; the row stays ``pending`` for ``retry_pending_subscriptions``. A refusal
    (``BillingBackendRejected``: asking again cannot help) ends the row ``failed``."""
    backend = get_subscription_backend()
    external_id = subscription.lago_external_id or f"{subscription.org_id}-{subscription.pk}"
    try:
        external = backend.start(org=subscription.org, plan=subscription.plan, external_id=external_id)
    except BillingBackendRejected as exc:
        mark_subscription_failed(
            subscription_id=subscription.pk,
            error=f"{backend.name} refused: {exc.message} {exc.details}",
            actor=actor,
            actor_label=actor_label,
        )
        raise
    except BillingBackendUnavailable as exc:
        OrganizationSubscription.objects.filter(pk=subscription.pk).update(
            activation_attempts=F("activation_attempts") + 1,
            last_backend_error=f"{backend.name}: {exc.message} {exc.details}"[:500],
            updated_at=timezone.now(),
        )
        raise
    return mark_subscription_active(
        subscription_id=subscription.pk,
        external=external,
        external_id=external_id,
        backend_name=backend.name,
        actor=actor,
        actor_label=actor_label,
    )


def mark_subscription_active(
    *,
    subscription_id: int,
    external: BackendSubscription,
    external_id: str,
    backend_name: str,
    actor: User | None = None,
    actor_label: str = "",
) -> OrganizationSubscription:
    """Record that the backend started a ``pending`` subscription (its answer, or its webhook),
    and grant its initial credits in the same transaction (lock order: subscription row, then
    the pool), so an active subscription never lacks them. A row no longer pending is left as
    it is."""
    with transaction.atomic():
        sub = (
            OrganizationSubscription.objects.select_for_update()
            .select_related("plan")
            .get(pk=subscription_id)
        )
        if sub.status != OrganizationSubscription.Status.PENDING:
            return sub
        sub.status = OrganizationSubscription.Status.ACTIVE
        sub.lago_subscription_id = external.external_id
        sub.lago_external_id = external_id
        sub.current_period_start = external.period_start
        sub.current_period_end = external.period_end
        sub.activation_attempts += 1
        sub.last_backend_error = ""
        sub.save()
        _history(sub, "started", f"Subscribed to {sub.plan.name} ({backend_name})")
        record_audit_event(
            action="subscription.created",
            actor=actor,
            actor_label=actor_label,
            org_id=sub.org_id,
            target_type="subscription",
            target_id=sub.pk,
            metadata={"plan_code": sub.plan.plan_code, "backend": backend_name},
        )
        grant_initial_credits(subscription=sub, actor=actor, actor_label=actor_label)
    return sub


def mark_subscription_failed(
    *, subscription_id: int, error: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """End a ``pending`` subscription that the backend will not start (it never went live; the
    organization may subscribe again). A row no longer pending is left as it is."""
    with transaction.atomic():
        sub = OrganizationSubscription.objects.select_for_update().get(pk=subscription_id)
        if sub.status != OrganizationSubscription.Status.PENDING:
            return sub
        sub.status = OrganizationSubscription.Status.FAILED
        sub.activation_attempts += 1
        sub.last_backend_error = error[:500]
        sub.save(update_fields=["status", "activation_attempts", "last_backend_error", "updated_at"])
        plan_changes_on_commit(sub.org_id)
        record_audit_event(
            action="subscription.failed",
            actor=actor,
            actor_label=actor_label,
            org_id=sub.org_id,
            target_type="subscription",
            target_id=sub.pk,
            metadata={"error": sub.last_backend_error, "attempts": sub.activation_attempts},
        )
    return sub


def grant_initial_credits(
    *, subscription: OrganizationSubscription, actor: User | None = None, actor_label: str = ""
) -> None:
    """The initial credits of a live subscription, granted once (keyed by the subscription).
    They come with a subscription the backend already started (and bills), so an organization
    deactivated meanwhile still gets them."""
    if subscription.initial_credits and subscription.status == OrganizationSubscription.Status.ACTIVE:
        add_credits_to_pool(
            require_active_org=False,
            org_id=subscription.org_id,
            amount=subscription.initial_credits,
            actor=actor,
            actor_label=actor_label,
            external_id=initial_credit_key(subscription.pk),
            description="Initial credits with the subscription",
            source=CreditGrant.Source.SUBSCRIPTION,
        )


def initial_credit_key(subscription_id: int) -> str:
    return f"subscription-{subscription_id}-initial-credits"


@dataclass(frozen=True)
class RetryOutcome:
    activated: list[int]
    still_pending: list[int]
    failed: list[int] = field(default_factory=list)  # refused, out of attempts, or an error


def _ungranted_active() -> list[int]:
    """Active subscriptions with initial credits but no grant in the history (an activation
    committed before grants were part of it, then interrupted)."""
    grant = OrgBillingHistory.objects.filter(
        external_id=Concat(
            Value("subscription-"),
            Cast(OuterRef("pk"), models.TextField()),
            Value("-initial-credits"),
            output_field=models.CharField(),
        )
    )
    return list(
        OrganizationSubscription.objects.filter(
            status=OrganizationSubscription.Status.ACTIVE, initial_credits__gt=0
        )
        .filter(~Exists(grant))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def retry_pending_subscriptions(*, older_than_seconds: int | None = None) -> RetryOutcome:
    """Try again every subscription left ``pending`` by a backend failure (oldest first), and
    grant initial credits an active subscription lacks. Rows younger than ``older_than_seconds``
    are left to the request creating them. A row that reached ``LAGO_MAX_ACTIVATION_ATTEMPTS`` is
    ended ``failed`` (after making sure the backend holds no live subscription for it). One row's
    error is logged and counted; the others are still tried."""
    age = settings.LAGO_PENDING_RETRY_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    pending = list(
        OrganizationSubscription.objects.filter(
            status=OrganizationSubscription.Status.PENDING, created_at__lte=cutoff
        )
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    activated: list[int] = []
    still_pending: list[int] = []
    failed: list[int] = []
    for pk in pending + _ungranted_active():
        try:
            sub = OrganizationSubscription.objects.select_related("org", "plan").get(pk=pk)
            if (
                sub.status == OrganizationSubscription.Status.PENDING
                and sub.activation_attempts >= settings.LAGO_MAX_ACTIVATION_ATTEMPTS
            ):
                _give_up(sub)
                failed.append(pk)
                continue
            sub = complete_pending_subscription(subscription_id=pk, actor_label="retry_pending_subscriptions")
        except BillingBackendUnavailable:
            still_pending.append(pk)
            continue
        except Exception as exc:
            logger.exception("retrying subscription %s failed", pk)
            OrganizationSubscription.objects.filter(
                pk=pk, status=OrganizationSubscription.Status.PENDING
            ).update(
                activation_attempts=F("activation_attempts") + 1,
                last_backend_error=f"{exc.__class__.__name__}: {exc}"[:500],
                updated_at=timezone.now(),
            )
            failed.append(pk)
            continue
        if sub.status == OrganizationSubscription.Status.ACTIVE:
            activated.append(pk)
        elif sub.status == OrganizationSubscription.Status.PENDING:
            still_pending.append(pk)
        else:
            failed.append(pk)
    return RetryOutcome(activated=activated, still_pending=still_pending, failed=failed)


def _give_up(sub: OrganizationSubscription) -> None:
    """Out of attempts: an earlier call may have started it at the backend (its answer was
    lost), so it is terminated there first; only then is our row ended ``failed``."""
    get_subscription_backend().cancel(subscription=sub)  # Unavailable: still pending, next run
    mark_subscription_failed(
        subscription_id=sub.pk,
        error=f"gave up after {sub.activation_attempts} attempts: {sub.last_backend_error}",
        actor_label="retry_pending_subscriptions",
    )


def _live_subscription(org_id: str) -> OrganizationSubscription:
    sub = (
        OrganizationSubscription.objects.select_related("plan", "org")
        .filter(org_id=org_id, status=OrganizationSubscription.Status.ACTIVE)
        .first()
    )
    if sub is None:
        if not Organization.objects.filter(pk=org_id).exists():
            raise OrganizationNotFound(details={"org_id": org_id})
        raise SubscriptionNotFound(details={"org_id": org_id})
    return sub


def change_subscription_plan(
    *, org_id: str, plan_code: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """Move the live subscription to another plan (upgrade or downgrade). Re-checked under the
    row lock after the backend call: a subscription canceled or changed meanwhile is a
    ``Conflict``, and the backend is put back in line with the row (see ``_undo_plan_change``)."""
    plan = _plan(plan_code)
    sub = _live_subscription(org_id)
    if sub.plan_id == plan.pk:
        raise PlanUnchanged(details={"plan_code": plan_code})
    previous = sub.plan.plan_code
    backend = get_subscription_backend()
    external = backend.change_plan(subscription=sub, plan=plan)
    with transaction.atomic():
        locked = OrganizationSubscription.objects.select_for_update().select_related("plan").get(pk=sub.pk)
        lost = locked.status != OrganizationSubscription.Status.ACTIVE or locked.plan_id != sub.plan_id
        if not lost:
            locked.plan = plan
            locked.current_period_start = external.period_start
            locked.current_period_end = external.period_end
            locked.save()
            _history(
                locked,
                f"plan-{previous}-to-{plan.plan_code}-{timezone.now():%Y%m%d%H%M%S%f}",
                f"Plan changed to {plan.name}",
            )
            record_audit_event(
                action="subscription.plan_changed",
                actor=actor,
                actor_label=actor_label,
                org_id=org_id,
                target_type="subscription",
                target_id=locked.pk,
                metadata={"from": previous, "to": plan.plan_code},
            )
    if lost:
        _undo_plan_change(backend, locked)
        raise Conflict(
            "The subscription was changed or canceled meanwhile; the plan was not changed.",
            details={"org_id": org_id, "status": locked.status, "plan_code": locked.plan.plan_code},
        )
    return locked


def _undo_plan_change(backend: SubscriptionBackend, current: OrganizationSubscription) -> None:
    """Our plan-change call lost a race: it may have re-subscribed at the backend behind a
    cancel, or left it on our plan after another change won. Put the backend back in line with
    the row (best effort, outside any transaction; a failure is logged for ops)."""
    try:
        if current.status == OrganizationSubscription.Status.ACTIVE:
            backend.change_plan(subscription=current, plan=current.plan)
        else:
            backend.cancel(subscription=current)
    except (BillingBackendUnavailable, BillingBackendRejected):
        logger.error(
            "subscription %s: could not undo a plan change that lost a race (backend may differ)",
            current.pk,
        )


def cancel_subscription(
    *, org_id: str, actor: User | None = None, actor_label: str = ""
) -> OrganizationSubscription:
    """Cancel the live subscription at the backend and here. Credits already bought stay.
    Canceling one that was canceled or terminated meanwhile is a success that changes nothing.
    When the row changed while we called the backend (a plan change, which may have
    re-subscribed there), the backend is called again before the row is canceled."""
    sub = _live_subscription(org_id)
    backend = get_subscription_backend()
    for _ in range(CANCEL_ROUNDS):
        seen = sub.updated_at
        backend.cancel(subscription=sub)
        with transaction.atomic():
            sub = OrganizationSubscription.objects.select_for_update().select_related("plan").get(pk=sub.pk)
            if sub.status in ENDED:
                return sub
            if sub.status != OrganizationSubscription.Status.ACTIVE:
                raise Conflict("The subscription is not active.", details={"status": sub.status})
            if sub.updated_at != seen:
                continue  # changed under us: terminate at the backend again, then re-check
            sub.status = OrganizationSubscription.Status.CANCELED
            sub.canceled_at = timezone.now()
            sub.save()
            _history(sub, "canceled", f"Subscription to {sub.plan.name} canceled")
            record_audit_event(
                action="subscription.canceled",
                actor=actor,
                actor_label=actor_label,
                org_id=org_id,
                target_type="subscription",
                target_id=sub.pk,
            )
            return sub
    raise Conflict("The subscription keeps changing; try again.", details={"org_id": org_id})
