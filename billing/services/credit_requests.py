"""Members' requests for more credits: ask, approve (raises the requester's allocation through
``allocate_credits_to_user``), decline, cancel.

A request moves out of ``pending`` once, under its row lock (``lock_credit_request``), taken
before the pool: two approvals racing raise the allocation once, the other answers 409
``request_not_pending``. Nobody decides their own request, admin or not. The e-mails (admins and
the department's managers on a new request, the requester on a decision) go out after commit.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.audit import record_audit_event
from billing.errors import (
    CreditRequestAlreadyOpen,
    CreditRequestNotFound,
    CreditRequestNotPending,
    CreditRequestNotYours,
    DepartmentAccessDenied,
    OwnCreditRequest,
)
from billing.ledger.eligibility import require_active_member, require_active_org
from billing.ledger.locks import lock_credit_request, lock_pool
from billing.ledger.pool import allocate_credits_to_user
from billing.models import CreditRequest
from billing.money import millicredits_to_credits, validate_millicredits
from billing.permissions import Deciders
from billing.selectors.departments import allocation_department_id
from billing.services.notifications import org_admin_recipients, queue_email
from organizations.models import User
from orgbilling.errors import ValidationFailed

MAX_TEXT = 500


def _clean_text(text: str, field: str, *, required: bool) -> str:
    cleaned = text.strip()
    if required and not cleaned:
        raise ValidationFailed("Say why you need the credits.", details={field: "blank"})
    if len(cleaned) > MAX_TEXT:
        raise ValidationFailed(f"At most {MAX_TEXT} characters.", details={field: "too long"})
    return cleaned


def _credits_text(millicredits: int) -> str:
    return f"{millicredits_to_credits(millicredits).normalize():f}"


def _notify_deciders(request: CreditRequest) -> None:
    recipients = set(org_admin_recipients(request.org_id))
    if request.department is not None:
        recipients |= {m.email for m in request.department.managers.all() if m.email}
    recipients.discard(request.requester.email)
    queue_email(
        subject=f"{request.requester.username} asks for {_credits_text(request.credits)} credits",
        body=(
            f"{request.requester.username} asks {request.org_id} for {_credits_text(request.credits)} "
            f"more credits (request {request.pk}).\n\nReason: {request.reason}\n\n"
            "Approve or decline it on the organization's portal page or through the API."
        ),
        recipients=sorted(recipients),
    )


def _notify_requester(request: CreditRequest) -> None:
    outcome = f"Your request for {_credits_text(request.credits)} credits in {request.org_id}"
    lines = [
        f"{outcome} was {request.status} by {request.decided_by.username if request.decided_by else '-'}."
    ]
    if request.decision_note:
        lines.append(f"Note: {request.decision_note}")
    queue_email(
        subject=f"{outcome} was {request.status}",
        body="\n\n".join(lines),
        recipients=[request.requester.email] if request.requester.email else [],
    )


def request_credits(*, org_id: str, requester: User, credits: int, reason: str) -> CreditRequest:
    """An active member of an active organization asks for ``credits`` more millicredits (a
    deactivated one: 403 ``organization_inactive``, as every other write there); at most one
    pending request per member and organization (409 ``credit_request_already_open``, backed by
    a unique index)."""
    credits = validate_millicredits(credits)
    reason = _clean_text(reason, "reason", required=True)
    with transaction.atomic():
        require_active_org(org_id)
        require_active_member(org_id, requester)
        try:
            with transaction.atomic():
                request = CreditRequest.objects.create(
                    org_id=org_id,
                    requester=requester,
                    department_id=allocation_department_id(org_id=org_id, user=requester),
                    credits=credits,
                    reason=reason,
                )
        except IntegrityError:
            open_id = (
                CreditRequest.objects.filter(
                    org_id=org_id, requester=requester, status=CreditRequest.Status.PENDING
                )
                .values_list("pk", flat=True)
                .first()
            )
            raise CreditRequestAlreadyOpen(details={"request_id": open_id}) from None
        record_audit_event(
            action="credit_request.created",
            actor=requester,
            org_id=org_id,
            target_type="credit_request",
            target_id=request.pk,
            metadata={"credits": credits, "department_id": request.department_id},
        )
        _notify_deciders(request)
    return request


def _locked_for_decision(org_id: str, request_id: int, actor: User, deciders: Deciders) -> CreditRequest:
    """Lock the request and check it may be decided by ``actor``: one a manager may not see is
    404, their own 403 ``own_credit_request``, one already decided 409 ``request_not_pending``."""
    request = lock_credit_request(org_id, request_id)
    if (
        deciders.department_ids is not None
        and request.requester_id != actor.pk
        and request.department_id not in deciders.department_ids
    ):
        raise CreditRequestNotFound(details={"org_id": org_id, "request_id": request_id})
    if request.requester_id == actor.pk:
        raise OwnCreditRequest(details={"request_id": request_id})
    if request.status != CreditRequest.Status.PENDING:
        raise CreditRequestNotPending(details={"request_id": request_id, "status": request.status})
    return request


def _require_department(deciders: Deciders, department_id: int | None) -> None:
    if deciders.department_ids is not None and department_id not in deciders.department_ids:
        raise DepartmentAccessDenied(details={"department_id": department_id})


def _decide(
    request: CreditRequest, status: str, actor: User, note: str, action: str, **metadata: object
) -> None:
    request.status = status
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decision_note = note
    request.save(
        update_fields=["status", "decided_by", "decided_at", "decision_note", "allocation", "updated_at"]
    )
    record_audit_event(
        action=action,
        actor=actor,
        org_id=request.org_id,
        target_type="credit_request",
        target_id=request.pk,
        metadata={"requester": request.requester.username, "credits": request.credits, **metadata},
    )
    if status != CreditRequest.Status.CANCELLED:
        _notify_requester(request)


def approve_credit_request(
    *, org_id: str, request_id: int, actor: User, deciders: Deciders, note: str = ""
) -> CreditRequest:
    """Raise the requester's allocation by the requested credits (creating one if they have
    none) in the department of the allocation they hold now (none: from the pool). A manager
    approves only inside the departments they manage (403), within the budget (409
    ``allocation_exceeds_department_budget``); a short pool is the usual 409."""
    note = _clean_text(note, "note", required=False)
    with transaction.atomic():
        request = _locked_for_decision(org_id, request_id, actor, deciders)
        lock_pool(org_id)
        # Under the pool lock the member's active allocation (and so its department) is fixed.
        department_id = allocation_department_id(org_id=org_id, user=request.requester)
        _require_department(deciders, department_id)
        change = allocate_credits_to_user(
            org_id=org_id,
            user=request.requester,
            amount=request.credits,
            actor=actor,
            department_id=department_id,
        )
        request.allocation = change.allocation
        _decide(
            request,
            CreditRequest.Status.APPROVED,
            actor,
            note,
            "credit_request.approved",
            allocation_id=change.allocation.pk,
            allocated_after=change.allocation.allocated_credits,
            department_id=department_id,
        )
    return request


def decline_credit_request(
    *, org_id: str, request_id: int, actor: User, deciders: Deciders, note: str = ""
) -> CreditRequest:
    """Decline a pending request (a manager: one of a member of a department they manage)."""
    note = _clean_text(note, "note", required=False)
    with transaction.atomic():
        request = _locked_for_decision(org_id, request_id, actor, deciders)
        _require_department(deciders, allocation_department_id(org_id=org_id, user=request.requester))
        _decide(request, CreditRequest.Status.DECLINED, actor, note, "credit_request.declined")
    return request


def cancel_credit_request(*, org_id: str, request_id: int, actor: User) -> CreditRequest:
    """The requester withdraws their own pending request."""
    with transaction.atomic():
        request = lock_credit_request(org_id, request_id)
        if request.requester_id != actor.pk:
            raise CreditRequestNotYours(details={"request_id": request_id})
        if request.status != CreditRequest.Status.PENDING:
            raise CreditRequestNotPending(details={"request_id": request_id, "status": request.status})
        _decide(request, CreditRequest.Status.CANCELLED, actor, "", "credit_request.cancelled")
    return request
