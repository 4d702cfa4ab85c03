"""The buttons that file approval requests and record disputes, on the pages of the
subscriptions app's records: a QSR pause, a max seats reset and a free period on a
subscription; a dispute and a refund on a reconciliation. Each is a form, a preview of
what is at stake and whose approval it needs, and the service call (see
`portal.admin_actions`). `approvals/admin.py` adds them to the subscriptions admins."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest
from portal import policy
from portal.admin_actions import LINK, LinkField, ObjectAction
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.admin_actions import is_live
from subscriptions.models import Reconciliation

A = policy.Action


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


def _today():
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

SUBSCRIPTION_REQUESTS = (
    ObjectAction(
        name="request-pause",
        label="Request a QSR pause",
        action=A.REQUEST_PAUSE,
        form=PauseForm,
        preview=lambda s, d, u: _stake_lines(
            services.pause_stake(subscription=s, until=d["until"], today=_today())
        ),
        perform=lambda s, d, u: _filed(
            services.approval_request_pause(
                subscription=s,
                until=d["until"],
                justification=d["justification"],
                ticket_url=d["ticket_url"],
                actor=u,
            )
        ),
        available=is_live,
    ),
    ObjectAction(
        name="request-reset",
        label="Request a max seats reset",
        action=A.REQUEST_RESET,
        form=ResetForm,
        preview=lambda s, d, u: _stake_lines(
            services.reset_stake(subscription=s, new_max_seats=d["new_max_seats"], today=_today())
        ),
        perform=lambda s, d, u: _filed(
            services.approval_request_reset(
                subscription=s,
                new_max_seats=d["new_max_seats"],
                justification=d["justification"],
                ticket_url=d["ticket_url"],
                actor=u,
            )
        ),
        available=is_live,
    ),
    ObjectAction(
        name="request-free-period",
        label="Request a free period",
        action=A.REQUEST_FREE_PERIOD,
        form=FreePeriodForm,
        initial=lambda s: {"start": max(_today(), s.term_start), "days": 30},
        preview=lambda s, d, u: _stake_lines(
            services.free_period_stake(
                subscription=s, start=d["start"], days=d["days"], today=_today()
            )
        ),
        perform=lambda s, d, u: _filed(
            services.approval_request_free_period(
                subscription=s,
                start=d["start"],
                days=d["days"],
                justification=d["justification"],
                ticket_url=d["ticket_url"],
                actor=u,
            )
        ),
        available=is_live,
    ),
)


# --- Reconciliation ----------------------------------------------------------------------


def _dispute_preview(recon, data, user):
    customer = recon.subscription.customer
    owner = customer.owner
    if owner is None or not owner.is_active:
        # What `dispute_record` refuses: there is nobody to route the dispute to.
        raise DomainError(
            f"{customer} has no active sales manager to route the dispute to; ask sales ops "
            "to assign one."
        )
    return [
        f"A dispute of {recon} ({billing.format_money(recon.amount or 0, recon.currency)}) is "
        f"routed to the account's sales manager, {owner}, by email.",
        f"Your ticket {data['ticket_url']} is recorded as closed (routed). The reconciliation "
        "itself does not change.",
    ]


def _dispute_perform(recon, data, user):
    d = services.dispute_record(
        reconciliation=recon, reason=data["reason"], ticket_url=data["ticket_url"], actor=user
    )
    return f"Dispute #{d.pk} routed to {d.assigned_to}; close your ticket as routed."


RECONCILIATION_ACTIONS = (
    ObjectAction(
        name="record-dispute",
        label="Record a dispute",
        action=A.RECORD_DISPUTE,
        form=DisputeForm,
        preview=_dispute_preview,
        perform=_dispute_perform,
        available=lambda r: (
            r.status in (Reconciliation.Status.PENDING, Reconciliation.Status.PROCESSED)
        ),
    ),
    ObjectAction(
        name="request-refund",
        label="Request a refund",
        action=A.REQUEST_REFUND,
        form=RefundForm,
        initial=lambda r: {"seats": (r.overage_seats or 0) - r.refunded_seats},
        preview=lambda r, d, u: _stake_lines(
            services.refund_stake(reconciliation=r, seats=d["seats"])
        ),
        perform=lambda r, d, u: _filed(
            services.approval_request_refund(
                reconciliation=r,
                seats=d["seats"],
                justification=d["justification"],
                ticket_url=d["ticket_url"],
                actor=u,
            )
        ),
        available=lambda r: (
            r.status == Reconciliation.Status.PROCESSED
            and (r.overage_seats or 0) > r.refunded_seats
        ),
    ),
)
