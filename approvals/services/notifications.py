"""Emails about requests and disputes. They are written to the outbox in the
transaction of the change that causes them, from the state that change left, and sent
by a worker after it commits: a rolled-back change never mails anyone, a committed one
always does, and a slow mail server never holds a lock.

- approvers of an open slot, when a request needs them;
- the requester, when it is decided (approved, rejected, cancelled) or executed;
- support, when an approved max seats reset waits for them to execute it; deal desk, when
  a refund and its reset are both approved;
- the account's sales manager, when support routes a dispute to them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage

from outbox.services import Mail, outbox_add
from portal import policy
from portal.formats import count, moment
from portal.roles import DEAL_DESK, SUPPORT
from subscriptions import billing

if TYPE_CHECKING:
    from approvals.models import ApprovalRequest, Dispute

EVENTS = ("needs_approval", "decided", "executed", "dispute_routed")


def notify_on_commit(event: str, record_id: int) -> None:
    """Write the emails of `event` about request (or dispute) `record_id` to the outbox;
    they are sent once the caller's transaction commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    messages = _messages(event, record_id)
    kind = "dispute" if event == "dispute_routed" else "approval"
    # Each change that calls this happens once (the services lock and check its
    # transition), so each of its messages gets a key of its own.
    tag = uuid.uuid4().hex
    outbox_add(
        [
            Mail(
                key=f"{event}:{record_id}:{tag}:{n}",
                kind=kind,
                # The portal writes its messages in plain strings, never lazy ones.
                subject=cast(str, message.subject),
                body=cast(str, message.body),
                to=message.to,
            )
            for n, message in enumerate(messages)
        ]
    )


def _role_members(role: str, *, exclude: set[int]) -> list[Any]:
    users = get_user_model().objects.filter(is_active=True, groups__name=role).distinct()
    return [u for u in users.order_by("pk") if u.pk not in exclude and u.email]


def _link(path: str) -> str:
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}{path}"


def _request_summary(req: ApprovalRequest) -> str:
    sub = req.subscription
    return (
        f"{req.get_kind_display()} #{req.pk} for {sub.customer} ({sub.namespace})\n"
        f"Requested by: {req.requester}\n"
        f"At stake: {count(req.seats_at_stake, 'seat')}, "
        f"{billing.format_money(req.amount_at_stake, req.currency)}\n"
        f"Justification: {req.justification}\n"
        f"Ticket: {req.ticket_url}\n"
        f"Status: {req.get_status_display()}\n"
        f"Open it: {_link(f'/admin/approvals/approvalrequest/{req.pk}/change/')}\n"
    )


def _messages_for_request(event: str, req: ApprovalRequest) -> list[EmailMessage]:
    messages: list[EmailMessage] = []
    summary = _request_summary(req)

    def mail(users: Iterable[Any], subject: str, body: str = summary) -> None:
        to = sorted({u.email for u in users if u.email})
        if to:
            messages.append(EmailMessage(subject=subject, body=body, to=to))

    if event == "needs_approval" and req.status == req.Status.PENDING:
        decided = {d.approver_id for d in req.decisions.all()}
        filled = {d.slot for d in req.decisions.all()}
        for slot in req.required_slots:
            if slot in filled:
                continue
            approvers = [
                u
                for u in policy.approvers_for_slot(slot)
                if u.pk != req.requester_id and u.pk not in decided
            ]
            mail(approvers, f"Approval needed ({policy.SLOT_LABELS[slot]}): {req}")
    elif event in ("decided", "executed"):
        mail(
            [req.requester],
            f"Your request was {req.get_status_display().lower()}: {req}",
            summary + _decisions(req),
        )
        if event == "decided" and req.status == req.Status.APPROVED:
            mail(_executors(req), f"Ready to execute: {req}")
            # When the reset comes second, deal desk hears of the refund waiting on it.
            refund = getattr(req, "refund", None)  # the reverse one-to-one, when linked
            if refund is not None and refund.status == req.Status.APPROVED:
                mail(
                    _role_members(DEAL_DESK, exclude={refund.requester_id}),
                    f"Ready to execute: {refund}",
                    _request_summary(refund),
                )
    return messages


def _decisions(req: ApprovalRequest) -> str:
    """Who decided, in which slot, and why: what the requester reads of a decision."""
    lines = [
        f"- {policy.SLOT_LABELS.get(d.slot, d.slot)}: {d.get_decision_display().lower()}d by "
        f"{d.approver} on {moment(d.decided_at)}" + (f": {d.reason}" if d.reason else "")
        for d in req.decisions.all()
    ]
    return "Decisions:\n" + "\n".join(lines) + "\n" if lines else ""


def _executors(req: ApprovalRequest) -> list[Any]:
    """Who executes `req` once approved: support a reset, deal desk a refund whose reset
    is approved too."""
    kind = req.Kind
    exclude = {req.requester_id}
    if req.kind == kind.MAX_SEATS_RESET:
        return _role_members(SUPPORT, exclude=exclude)
    # The approval_refund_links_reset constraint: a refund always has its reset.
    if req.kind == kind.QSR_REFUND and cast("ApprovalRequest", req.linked_reset).status in (
        req.Status.APPROVED,
        req.Status.EXECUTED,
    ):
        return _role_members(DEAL_DESK, exclude=exclude)
    return []


def _messages_for_dispute(dispute: Dispute) -> list[EmailMessage]:
    recon = dispute.reconciliation
    owner = dispute.assigned_to
    if not owner.email:
        return []
    body = (
        f"Support routed a dispute of {recon} to you as the account's sales manager.\n"
        f"Customer: {recon.subscription.customer}\n"
        f"Amount: {billing.format_money(recon.amount or 0, recon.currency)}\n"
        f"What the customer disputes: {dispute.reason}\n"
        f"Support ticket (closed as routed): {dispute.ticket_url}\n"
        f"Recorded by: {dispute.recorded_by}\n"
        f"Open it: {_link(f'/admin/approvals/dispute/{dispute.pk}/change/')}\n"
    )
    return [EmailMessage(subject=f"Dispute routed to you: {recon}", body=body, to=[owner.email])]


def _messages(event: str, record_id: int) -> list[EmailMessage]:
    from approvals.models import ApprovalRequest, Dispute

    if event == "dispute_routed":
        dispute = (
            Dispute.objects.select_related(
                "reconciliation__subscription__customer", "assigned_to", "recorded_by"
            )
            .filter(pk=record_id)
            .first()
        )
        return _messages_for_dispute(dispute) if dispute else []
    req = (
        ApprovalRequest.objects.select_related(
            "requester", "subscription__customer", "subscription__namespace", "linked_reset"
        )
        .prefetch_related("decisions__approver")
        .filter(pk=record_id)
        .first()
    )
    return _messages_for_request(event, req) if req else []
