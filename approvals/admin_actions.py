"""The staff actions of the admin: each a form, a preview from the services and the
service call (see `portal.admin_actions`). Which buttons a user sees is the policy's
answer; the services check it again."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import URLValidator
from django.forms.models import fields_for_model
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalRequest, Dispute
from approvals.services.execution import reset_value_check
from portal import policy
from portal.admin_actions import ObjectAction
from portal.errors import DomainError
from portal.roles import SALES
from subscriptions import billing
from subscriptions.models import Reconciliation, Subscription
from subscriptions.services.customers import customer_assign_owner
from subscriptions.services.lifecycle import (
    AMENDABLE,
    subscription_amend,
    subscription_amend_effect,
    subscription_cancel,
    subscription_cancel_effect,
)
from subscriptions.services.subscriptions import (
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
)

A = policy.Action
QsrState = Subscription.QsrState
Status = ApprovalRequest.Status
LINK = {"assume_scheme": "https", "max_length": 200}


class LinkField(forms.URLField):
    """An http(s) link, as the services require (`check_url`): an ftp link refused only on
    confirmation would have had a confirmation page promise what cannot happen."""

    default_validators = [URLValidator(schemes=["http", "https"])]


class WhyForm(forms.Form):
    """What every request carries; subclasses put their own fields first."""

    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    ticket_url = LinkField(label="Ticket link", **LINK)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        why = ["justification", "ticket_url"]
        self.order_fields([*(f for f in self.fields if f not in why), *why])


class BugDisableForm(forms.Form):
    bug_url = LinkField(label="Bug link", help_text="The confirmed bug report.", **LINK)
    ticket_url = LinkField(label="Ticket link", **LINK)


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


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RequiredReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class ExecuteResetForm(forms.Form):
    new_max_seats = forms.IntegerField(min_value=0, label="New max seats used")


class ResolveForm(forms.Form):
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class LifecycleWhyForm(forms.Form):
    """What an amendment or a cancellation records in the history with who made it."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the history with the ticket link (100 characters for both).",
    )
    ticket_url = LinkField(label="Ticket link", **LINK)


class AmendForm(LifecycleWhyForm):
    """The amendable values, as the model's own form fields (its validators included),
    filled in with the subscription's; `version` says which state of it they show."""

    version = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        amendable = fields_for_model(Subscription, fields=AMENDABLE)
        self.fields = {**amendable, **self.fields}


def _version(sub: Subscription) -> str:
    return sub.updated_at.isoformat()


class OwnerForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(groups__name=SALES, is_active=True).distinct(),
        required=False,
        help_text="Empty: no sales manager.",
    )


def _live(obj) -> bool:
    return obj.status in (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)


def _today():
    return timezone.localdate()


# --- Subscription ------------------------------------------------------------------------


def _bug_preview(sub, data, user):
    return [
        f"QSR of {sub} goes from {sub.get_qsr_state_display()} to disabled for the bug "
        f"{data['bug_url']} (ticket {data['ticket_url']}).",
        "Reconciliations due while it is disabled are skipped with the reason "
        "“QSR disabled for a bug”; it shows in “QSR disabled for bugs” until re-enabled.",
    ]


def _bug_perform(sub, data, user):
    subscription_qsr_disable_for_bug(
        subscription=sub, bug_url=data["bug_url"], ticket_url=data["ticket_url"], actor=user
    )
    return f"QSR disabled for the bug {data['bug_url']}."


def _enable_preview(sub, data, user):
    return [
        f"QSR of {sub} goes from {sub.get_qsr_state_display().lower()} back to enabled; the "
        "next reconciliation charges the overage as usual."
    ]


def _enable_perform(sub, data, user):
    subscription_qsr_enable(subscription=sub, actor=user)
    return "QSR re-enabled."


def _amend_values(data) -> dict:
    return {name: data[name] for name in AMENDABLE}


def _amend_effect(sub, data):
    # The confirmation page showed the values against one state of the subscription; a
    # change since (a colleague, the nightly run) would be undone without being shown.
    if data["version"] != _version(sub):
        raise DomainError(
            "The subscription has changed since this form was opened; open it again to see "
            "its current values."
        )
    effect = subscription_amend_effect(subscription=sub, values=_amend_values(data), today=_today())
    if not effect.changes:
        raise DomainError("Nothing to change: every value is the subscription's own.")
    return effect


def _amend_perform(sub, data, user):
    _amend_effect(sub, data)
    subscription_amend(
        subscription=sub,
        actor=user,
        reason=data["reason"],
        ticket_url=data["ticket_url"],
        today=_today(),
        **_amend_values(data),
    )
    return "Subscription amended."


def _stake_lines(stake) -> list[str]:
    slots = ", ".join(policy.SLOT_LABELS[s] for s in stake.slots)
    return [
        *stake.effect,
        f"At stake: {stake.seats} seats, {stake.money()}. Needs approval by: {slots}.",
    ]


def _filed(request: ApprovalRequest) -> str:
    return f"Request #{request.pk} filed; the approvers have been emailed."


SUBSCRIPTION_ACTIONS = (
    ObjectAction(
        name="disable-qsr-for-bug",
        label="Disable QSR for a bug",
        action=A.QSR_DISABLE_FOR_BUG,
        form=BugDisableForm,
        preview=_bug_preview,
        perform=_bug_perform,
        available=lambda s: _live(s) and s.qsr_state == QsrState.ENABLED,
        intro="Only for a confirmed bug: link the bug report and the ticket.",
    ),
    ObjectAction(
        name="enable-qsr",
        label="Re-enable QSR",
        action=lambda s: A.QSR_END_PAUSE if s.qsr_state == QsrState.PAUSED else A.QSR_ENABLE,
        preview=_enable_preview,
        perform=_enable_perform,
        available=lambda s: _live(s) and s.qsr_state != QsrState.ENABLED,
    ),
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
        available=_live,
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
        available=_live,
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
        available=_live,
    ),
    ObjectAction(
        name="amend",
        label="Amend subscription",
        action=A.AMEND_SUBSCRIPTION,
        form=AmendForm,
        initial=lambda s: {
            **{name: getattr(s, name) for name in AMENDABLE},
            "version": _version(s),
        },
        preview=lambda s, d, u: _amend_effect(s, d).lines(),
        perform=_amend_perform,
        available=lambda s: s.status == Subscription.Status.ACTIVE,
        intro="Change the values that are wrong. The next page shows what the change does "
        "to QSR and money before anything is saved. A suspended subscription is amended "
        "after it resumes.",
    ),
    ObjectAction(
        name="cancel",
        label="Cancel subscription",
        action=A.CANCEL_SUBSCRIPTION,
        form=LifecycleWhyForm,
        preview=lambda s, d, u: subscription_cancel_effect(subscription=s),
        perform=lambda s, d, u: (
            subscription_cancel(
                subscription=s, actor=u, reason=d["reason"], ticket_url=d["ticket_url"]
            )
            and "Subscription cancelled."
        ),
        available=_live,
        danger=True,
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


# --- Dispute and customer ------------------------------------------------------------------

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

CUSTOMER_ACTIONS = (
    ObjectAction(
        name="assign-owner",
        label="Assign sales manager",
        action=A.ASSIGN_OWNER,
        form=OwnerForm,
        initial=lambda c: {"owner": c.owner_id},
        preview=lambda c, d, u: [
            f"{c} is owned by {d['owner'] or 'nobody'} (was {c.owner or 'nobody'}): they see "
            "and act on its records, and disputes are routed to them."
        ],
        perform=lambda c, d, u: (
            customer_assign_owner(customer=c, owner=d["owner"], actor=u) and "Sales manager set."
        ),
    ),
)
