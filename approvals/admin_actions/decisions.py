"""The buttons of the approval queue and of disputes: approve, reject or cancel a
request, execute an approved reset or refund, record how a dispute ended. Each is a form,
a preview from the services and the service call (see `portal.admin_actions`)."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from approvals import preconditions, services
from approvals.models import ApprovalRequest, Dispute
from portal import policy
from portal.admin_actions import ObjectAction
from subscriptions import billing
from subscriptions.models import Reconciliation

A = policy.Action
Status = ApprovalRequest.Status
Data = dict[str, Any]  # a form's cleaned data


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class ExecuteResetForm(forms.Form):
    new_max_seats = forms.IntegerField(min_value=0, label="New max seats used")


class ResolveForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


# --- Approval request --------------------------------------------------------------------


def _is_pending(req: ApprovalRequest) -> bool:
    return req.status == Status.PENDING


def _approve_preview(req: ApprovalRequest, data: Data, user: policy.Actor) -> list[str]:
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


def _approve_perform(req: ApprovalRequest, data: Data, user: policy.Actor) -> str:
    req = services.approval_approve(request=req, actor=user, reason=data.get("reason", ""))
    return f"Approved. The request is {req.get_status_display().lower()}."


def _reject_preview(req: ApprovalRequest, data: Data, user: policy.Actor) -> list[str]:
    lines = [f"{req} is rejected and ends here; the requester is emailed your reason."]
    refund = getattr(req, "refund", None)
    if refund is not None and refund.is_open:
        lines.append(f"The refund linked to it, #{refund.pk}, is cancelled with it.")
    return lines


def _reject_perform(req: ApprovalRequest, data: Data, user: policy.Actor) -> str:
    services.approval_reject(request=req, actor=user, reason=data["reason"])
    return "Rejected."


def _is_open(req: ApprovalRequest) -> bool:
    return req.is_open


def _cancel_preview(req: ApprovalRequest, data: Data, user: policy.Actor) -> list[str]:
    return [f"{req} is withdrawn; approvers need not act on it any more."]


def _cancel_perform(req: ApprovalRequest, data: Data, user: policy.Actor) -> str:
    services.approval_cancel(request=req, actor=user, reason=data.get("reason", ""))
    return "Cancelled."


def _reset_executable(req: ApprovalRequest) -> bool:
    return req.kind == req.Kind.MAX_SEATS_RESET and req.status == Status.APPROVED


def _reset_initial(req: ApprovalRequest) -> Data:
    ns = req.subscription.namespace
    return {"new_max_seats": max(ns.seats_in_use, ns.max_seats_used - req.seats_at_stake)}


def _execute_reset_preview(req: ApprovalRequest, data: Data, user: policy.Actor) -> list[str]:
    ns = req.subscription.namespace
    new = data["new_max_seats"]
    services.reset_value_check(ns, new, approved_seats=req.seats_at_stake)
    return [
        f"Max seats used of {ns} goes from {ns.max_seats_used} to {new} "
        f"({ns.seats_in_use} in use; approval waives up to {req.seats_at_stake} seats).",
        f"Documented with the ticket {req.ticket_url}.",
    ]


def _execute_reset_perform(req: ApprovalRequest, data: Data, user: policy.Actor) -> str:
    services.approval_execute_reset(request=req, new_max_seats=data["new_max_seats"], actor=user)
    return f"Max seats used set to {data['new_max_seats']}."


def _refund_processable(req: ApprovalRequest) -> bool:
    return req.kind == req.Kind.QSR_REFUND and req.status == Status.APPROVED


def _refund_preview(req: ApprovalRequest, data: Data, user: policy.Actor) -> list[str]:
    recon = cast(Reconciliation, req.reconciliation)  # a refund is of a reconciliation
    sub = req.subscription
    effect = services.refund_effect(req, reconciliation=recon, subscription=sub)
    return [
        f"A credit memo of -{billing.format_money(effect.amount, effect.currency)} to "
        f"{sub.customer} for {effect.seats} seats of {recon}.",
        f"Paid seats go from {sub.seats} to {effect.paid_seats_after}.",
        f"The linked max seats reset #{req.linked_reset_id} is "
        f"{cast(ApprovalRequest, req.linked_reset).get_status_display().lower()}; the refund "
        "is complete once support has executed it.",
    ]


def _refund_perform(req: ApprovalRequest, data: Data, user: policy.Actor) -> str:
    services.approval_process_refund(request=req, actor=user)
    return "Refund processed."


REQUEST_ACTIONS = (
    ObjectAction(
        name="approve",
        label="Approve",
        action=A.DECIDE,
        form=ReasonForm,
        preview=_approve_preview,
        perform=_approve_perform,
        available=_is_pending,
    ),
    ObjectAction(
        name="reject",
        label="Reject",
        action=A.DECIDE,
        form=RequiredReasonForm,
        preview=_reject_preview,
        perform=_reject_perform,
        available=_is_pending,
        danger=True,
    ),
    ObjectAction(
        name="cancel",
        label="Cancel request",
        action=A.CANCEL_REQUEST,
        form=ReasonForm,
        preview=_cancel_preview,
        perform=_cancel_perform,
        available=_is_open,
        danger=True,
    ),
    ObjectAction(
        name="execute-reset",
        label="Execute max seats reset",
        action=A.EXECUTE_RESET,
        form=ExecuteResetForm,
        initial=_reset_initial,
        preview=_execute_reset_preview,
        perform=_execute_reset_perform,
        available=_reset_executable,
        refusal=preconditions.execution_refusal,
    ),
    ObjectAction(
        name="process-refund",
        label="Process refund",
        action=A.PROCESS_REFUND,
        preview=_refund_preview,
        perform=_refund_perform,
        available=_refund_processable,
        refusal=preconditions.execution_refusal,
    ),
)


# --- Dispute -----------------------------------------------------------------------------


def _is_routed(dispute: Dispute) -> bool:
    return dispute.status == Dispute.Status.ROUTED


def _resolve_preview(dispute: Dispute, data: Data, user: policy.Actor) -> list[str]:
    return [f"{dispute} is marked resolved: {data['resolution']}"]


def _resolve_perform(dispute: Dispute, data: Data, user: policy.Actor) -> str:
    services.dispute_resolve(dispute=dispute, resolution=data["resolution"], actor=user)
    return "Dispute resolved."


DISPUTE_ACTIONS = (
    ObjectAction(
        name="resolve",
        label="Record the outcome",
        action=A.RESOLVE_DISPUTE,
        form=ResolveForm,
        preview=_resolve_preview,
        perform=_resolve_perform,
        available=_is_routed,
    ),
)
