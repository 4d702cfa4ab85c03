"""The buttons that file approval requests and record disputes, on the pages of the
subscriptions app's records: a QSR pause, a max seats reset and a free period on a
subscription; a dispute and a refund on a reconciliation. Each is a form, a preview of
what is at stake and whose approval it needs, and the service call (see
`portal.admin_actions`). `approvals/admin.py` adds them to the subscriptions admins."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils import timezone

from approvals import preconditions, services
from approvals.models import ApprovalRequest
from portal import policy
from portal.admin_actions import LINK, LinkField, ObjectAction
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.admin_actions import is_live
from subscriptions.models import Reconciliation, Subscription

A = policy.Action
Data = dict[str, Any]  # a form's cleaned data


class WhyForm(forms.Form):
    """What every request carries; subclasses put their own fields first."""

    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    ticket_url = LinkField(label="Ticket link", **LINK)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        why = ["justification", "ticket_url"]
        self.order_fields([*(f for f in self.fields if f not in why), *why])


class PauseForm(WhyForm):
    until = forms.DateField(
        required=False, help_text="Last paused day (YYYY-MM-DD); empty: the end of the term."
    )


class ResetForm(WhyForm):
    new_max_seats = forms.IntegerField(
        required=False, min_value=0, help_text="Empty: the seats in use today."
    )


class FreePeriodForm(WhyForm):
    start = forms.DateField(help_text="First free day (YYYY-MM-DD).")
    days = forms.IntegerField(min_value=1, max_value=366)


class RefundForm(WhyForm):
    seats = forms.IntegerField(min_value=1, help_text="Whole seats of the overage to refund.")


class DisputeForm(forms.Form):
    reason = forms.CharField(
        label="What the customer disputes", widget=forms.Textarea(attrs={"rows": 3})
    )
    ticket_url = LinkField(label="Support ticket link", **LINK)


def _today() -> date:
    return timezone.localdate()


def _stake_lines(stake) -> list[str]:
    slots = ", ".join(policy.SLOT_LABELS[s] for s in stake.slots)
    return [
        *stake.effect,
        f"At stake: {stake.seats} seats, {stake.money()}. Needs approval by: {slots}.",
    ]


def _filed(request: ApprovalRequest) -> str:
    return f"Request #{request.pk} filed; the approvers have been emailed."


# --- Subscription ------------------------------------------------------------------------


def _pause_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return _stake_lines(services.pause_stake(subscription=sub, until=data["until"], today=_today()))


def _pause_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    return _filed(
        services.approval_request_pause(
            subscription=sub,
            until=data["until"],
            justification=data["justification"],
            ticket_url=data["ticket_url"],
            actor=user,
        )
    )


def _reset_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return _stake_lines(
        services.reset_stake(subscription=sub, new_max_seats=data["new_max_seats"], today=_today())
    )


def _reset_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    return _filed(
        services.approval_request_reset(
            subscription=sub,
            new_max_seats=data["new_max_seats"],
            justification=data["justification"],
            ticket_url=data["ticket_url"],
            actor=user,
        )
    )


def _free_period_initial(sub: Subscription) -> Data:
    return {"start": max(_today(), sub.term_start), "days": 30}


def _free_period_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return _stake_lines(
        services.free_period_stake(
            subscription=sub, start=data["start"], days=data["days"], today=_today()
        )
    )


def _free_period_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    return _filed(
        services.approval_request_free_period(
            subscription=sub,
            start=data["start"],
            days=data["days"],
            justification=data["justification"],
            ticket_url=data["ticket_url"],
            actor=user,
        )
    )


SUBSCRIPTION_REQUESTS = (
    ObjectAction(
        name="request-pause",
        label="Request a QSR pause",
        action=A.REQUEST_PAUSE,
        form=PauseForm,
        preview=_pause_preview,
        perform=_pause_perform,
        available=is_live,
        refusal=preconditions.pause_refusal,
    ),
    ObjectAction(
        name="request-reset",
        label="Request a max seats reset",
        action=A.REQUEST_RESET,
        form=ResetForm,
        preview=_reset_preview,
        perform=_reset_perform,
        available=is_live,
        refusal=preconditions.reset_refusal,
    ),
    ObjectAction(
        name="request-free-period",
        label="Request a free period",
        action=A.REQUEST_FREE_PERIOD,
        form=FreePeriodForm,
        initial=_free_period_initial,
        preview=_free_period_preview,
        perform=_free_period_perform,
        available=is_live,
        refusal=preconditions.free_period_refusal,
    ),
)


# --- Reconciliation ----------------------------------------------------------------------


def _disputable(recon: Reconciliation) -> bool:
    return recon.status in services.DISPUTABLE


def _dispute_preview(recon: Reconciliation, data: Data, user: policy.Actor) -> list[str]:
    refusal = services.dispute_refusal(recon)
    if refusal is not None:
        raise DomainError(refusal)
    owner = recon.subscription.customer.owner
    return [
        f"A dispute of {recon} ({billing.format_money(recon.amount or 0, recon.currency)}) is "
        f"routed to the account's sales manager, {owner}, by email.",
        f"Your ticket {data['ticket_url']} is recorded as closed (routed). The reconciliation "
        "itself does not change.",
    ]


def _dispute_perform(recon: Reconciliation, data: Data, user: policy.Actor) -> str:
    d = services.dispute_record(
        reconciliation=recon, reason=data["reason"], ticket_url=data["ticket_url"], actor=user
    )
    return f"Dispute #{d.pk} routed to {d.assigned_to}; close your ticket as routed."


def _refundable(recon: Reconciliation) -> bool:
    """Processed, with overage seats not refunded yet."""
    return preconditions.refundable_refusal(recon) is None


def _refund_initial(recon: Reconciliation) -> Data:
    return {"seats": (recon.overage_seats or 0) - recon.refunded_seats}


def _refund_preview(recon: Reconciliation, data: Data, user: policy.Actor) -> list[str]:
    return _stake_lines(services.refund_stake(reconciliation=recon, seats=data["seats"]))


def _refund_perform(recon: Reconciliation, data: Data, user: policy.Actor) -> str:
    return _filed(
        services.approval_request_refund(
            reconciliation=recon,
            seats=data["seats"],
            justification=data["justification"],
            ticket_url=data["ticket_url"],
            actor=user,
        )
    )


RECONCILIATION_ACTIONS = (
    ObjectAction(
        name="record-dispute",
        label="Record a dispute",
        action=A.RECORD_DISPUTE,
        form=DisputeForm,
        preview=_dispute_preview,
        perform=_dispute_perform,
        available=_disputable,
        refusal=services.dispute_refusal,
    ),
    ObjectAction(
        name="request-refund",
        label="Request a refund",
        action=A.REQUEST_REFUND,
        form=RefundForm,
        initial=_refund_initial,
        preview=_refund_preview,
        perform=_refund_perform,
        available=_refundable,
        refusal=preconditions.refund_refusal,
    ),
)
