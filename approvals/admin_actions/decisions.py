"""The buttons of the approval queue and of disputes: approve, reject or cancel a
request, execute an approved reset or refund, record how a dispute ended. Each is a form,
a preview from the services and the service call (see `portal.admin_actions`)."""

from __future__ import annotations

from django import forms

from approvals import services
from approvals.models import ApprovalRequest, Dispute
from approvals.services.execution import reset_value_check
from portal import policy
from portal.admin_actions import ObjectAction
from subscriptions import billing

A = policy.Action
Status = ApprovalRequest.Status


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class ExecuteResetForm(forms.Form):
    new_max_seats = forms.IntegerField(min_value=0, label="New max seats used")


class ResolveForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


# --- Approval request --------------------------------------------------------------------


def _approve_preview(req, data, user):
    slot = policy.slots_for(user, req)[0]
    left = [
        s
        for s in req.required_slots
        if s != slot and s not in {d.slot for d in req.decisions.all()}
    ]
    lines = [
        f"You approve {req} in the slot “{policy.SLOT_LABELS[slot]}”: {req.seats_at_stake} "
        f"seats, {billing.format_money(req.amount_at_stake, req.currency)} at stake."
    ]
    if left:
        lines.append("Still waiting for: " + ", ".join(policy.SLOT_LABELS[s] for s in left) + ".")
    elif req.kind == req.Kind.QSR_PAUSE:
        lines.append(f"This is the last approval: QSR is paused until {req.pause_until} now.")
    elif req.kind == req.Kind.FREE_PERIOD:
        lines.append(
            f"This is the last approval: {req.free_days} free days from {req.free_from} are "
            "scheduled now and the term grows by them."
        )
    else:
        who = "support" if req.kind == req.Kind.MAX_SEATS_RESET else "deal desk"
        lines.append(f"This is the last approval: the request goes to {who} to execute.")
    return lines


def _approve_perform(req, data, user):
    req = services.approval_approve(request=req, actor=user, reason=data.get("reason", ""))
    return f"Approved. The request is {req.get_status_display().lower()}."


def _reject_preview(req, data, user):
    lines = [f"{req} is rejected and ends here; the requester is emailed your reason."]
    refund = getattr(req, "refund", None)
    if refund is not None and refund.is_open:
        lines.append(f"The refund linked to it, #{refund.pk}, is cancelled with it.")
    return lines


def _execute_reset_preview(req, data, user):
    ns = req.subscription.namespace
    new = data["new_max_seats"]
    reset_value_check(ns, new, approved_seats=req.seats_at_stake)
    return [
        f"Max seats used of {ns} goes from {ns.max_seats_used} to {new} "
        f"({ns.seats_in_use} in use; approval waives up to {req.seats_at_stake} seats).",
        f"Documented with the ticket {req.ticket_url}.",
    ]


def _refund_preview(req, data, user):
    recon = req.reconciliation
    amount = billing.qsr_refund_amount(
        quarter=recon.quarter,
        refunded_seats=req.seats_at_stake,
        overage=recon.overage_seats or 0,
        already_refunded=recon.refunded_seats,
        annual_unit_price=recon.annual_unit_price,
        currency=recon.currency,
    )
    sub = req.subscription
    return [
        f"A credit memo of -{billing.format_money(amount, recon.currency)} to "
        f"{sub.customer} for {req.seats_at_stake} seats of {recon}.",
        f"Paid seats go from {sub.seats} to {sub.seats - req.seats_at_stake}.",
        f"The linked max seats reset #{req.linked_reset_id} is "
        f"{req.linked_reset.get_status_display().lower()}; the refund is complete once "
        "support has executed it.",
    ]


def _reset_initial(req):
    ns = req.subscription.namespace
    return {"new_max_seats": max(ns.seats_in_use, ns.max_seats_used - req.seats_at_stake)}


REQUEST_ACTIONS = (
    ObjectAction(
        name="approve",
        label="Approve",
        action=A.DECIDE,
        form=ReasonForm,
        preview=_approve_preview,
        perform=_approve_perform,
        available=lambda r: r.status == Status.PENDING,
    ),
    ObjectAction(
        name="reject",
        label="Reject",
        action=A.DECIDE,
        form=RequiredReasonForm,
        preview=_reject_preview,
        perform=lambda r, d, u: (
            services.approval_reject(request=r, actor=u, reason=d["reason"]) and "Rejected."
        ),
        available=lambda r: r.status == Status.PENDING,
        danger=True,
    ),
    ObjectAction(
        name="cancel",
        label="Cancel request",
        action=A.CANCEL_REQUEST,
        form=ReasonForm,
        preview=lambda r, d, u: [f"{r} is withdrawn; approvers need not act on it any more."],
        perform=lambda r, d, u: (
            services.approval_cancel(request=r, actor=u, reason=d.get("reason", ""))
            and "Cancelled."
        ),
        available=lambda r: r.is_open,
        danger=True,
    ),
    ObjectAction(
        name="execute-reset",
        label="Execute max seats reset",
        action=A.EXECUTE_RESET,
        form=ExecuteResetForm,
        initial=_reset_initial,
        preview=_execute_reset_preview,
        perform=lambda r, d, u: (
            services.approval_execute_reset(request=r, new_max_seats=d["new_max_seats"], actor=u)
            and f"Max seats used set to {d['new_max_seats']}."
        ),
        available=lambda r: r.kind == r.Kind.MAX_SEATS_RESET and r.status == Status.APPROVED,
    ),
    ObjectAction(
        name="process-refund",
        label="Process refund",
        action=A.PROCESS_REFUND,
        preview=_refund_preview,
        perform=lambda r, d, u: (
            services.approval_process_refund(request=r, actor=u) and "Refund processed."
        ),
        available=lambda r: (
            r.kind == r.Kind.QSR_REFUND
            and r.status == Status.APPROVED
            and r.linked_reset.status in (Status.APPROVED, Status.EXECUTED)
        ),
    ),
)


# --- Dispute -----------------------------------------------------------------------------

DISPUTE_ACTIONS = (
    ObjectAction(
        name="resolve",
        label="Record the outcome",
        action=A.RESOLVE_DISPUTE,
        form=ResolveForm,
        preview=lambda d, data, u: [f"{d} is marked resolved: {data['resolution']}"],
        perform=lambda d, data, u: (
            services.dispute_resolve(dispute=d, resolution=data["resolution"], actor=u)
            and "Dispute resolved."
        ),
        available=lambda d: d.status == Dispute.Status.ROUTED,
    ),
)
