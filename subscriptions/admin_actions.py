"""The buttons that change a subscription or a customer directly, through the
subscriptions services: QSR disabled for a bug and re-enabled, amend, cancel, and an
account's sales manager. Each is a form, a preview from the services and the service call
(see `portal.admin_actions`). Which buttons a user sees is the policy's answer; the
services check it again. Buttons that file approval requests are the approvals app's."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.forms.models import fields_for_model
from django.utils import timezone

from portal import policy
from portal.admin_actions import LINK, LinkField, ObjectAction
from portal.errors import DomainError
from portal.roles import SALES
from subscriptions.models import Customer, Subscription
from subscriptions.services.customers import customer_assign_owner
from subscriptions.services.lifecycle import (
    AMENDABLE,
    AmendEffect,
    amend_refusal,
    subscription_amend,
    subscription_amend_effect,
    subscription_cancel,
    subscription_cancel_effect,
)
from subscriptions.services.subscriptions import (
    qsr_refusal,
    subscription_qsr_disable_for_bug,
    subscription_qsr_enable,
)

A = policy.Action
QsrState = Subscription.QsrState
Data = dict[str, Any]  # a form's cleaned data


class BugDisableForm(forms.Form):
    bug_url = LinkField(label="Bug link", help_text="The confirmed bug report.", **LINK)
    ticket_url = LinkField(label="Ticket link", **LINK)


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


def is_live(sub: Subscription) -> bool:
    """Whether the subscription still runs (active or suspended): what most buttons need."""
    return sub.status in (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)


def _today() -> date:
    return timezone.localdate()


# --- Subscription ------------------------------------------------------------------------


def _bug_disable_refusal(sub: Subscription) -> str | None:
    if sub.qsr_state == QsrState.DISABLED_FOR_BUG:
        return f"QSR is disabled for the bug {sub.qsr_bug_url} already."
    return qsr_refusal(sub, QsrState.DISABLED_FOR_BUG)


def _bug_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return [
        f"QSR of {sub} goes from {sub.get_qsr_state_display()} to disabled for the bug "
        f"{data['bug_url']} (ticket {data['ticket_url']}).",
        "Reconciliations due while it is disabled are skipped with the reason "
        "“QSR disabled for a bug”; it shows in “QSR disabled for bugs” until re-enabled.",
    ]


def _bug_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    subscription_qsr_disable_for_bug(
        subscription=sub, bug_url=data["bug_url"], ticket_url=data["ticket_url"], actor=user
    )
    return f"QSR disabled for the bug {data['bug_url']}."


def _enable_action(sub: Subscription) -> policy.Action:
    """Ending a pause is a different permission from re-enabling QSR disabled for a bug."""
    return A.QSR_END_PAUSE if sub.qsr_state == QsrState.PAUSED else A.QSR_ENABLE


def _qsr_may_be_enabled(sub: Subscription) -> bool:
    return is_live(sub) and sub.qsr_state != QsrState.ENABLED


def _enable_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return [
        f"QSR of {sub} goes from {sub.get_qsr_state_display().lower()} back to enabled; the "
        "next reconciliation charges the overage as usual."
    ]


def _enable_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    subscription_qsr_enable(subscription=sub, actor=user)
    return "QSR re-enabled."


def _amend_initial(sub: Subscription) -> Data:
    return {**{name: getattr(sub, name) for name in AMENDABLE}, "version": _version(sub)}


def _amend_values(data: Data) -> dict[str, Any]:
    return {name: data[name] for name in AMENDABLE}


def _amend_effect(sub: Subscription, data: Data) -> AmendEffect:
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


def _amend_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return _amend_effect(sub, data).lines()


def _amend_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
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


def _cancel_preview(sub: Subscription, data: Data, user: policy.Actor) -> list[str]:
    return subscription_cancel_effect(subscription=sub)


def _cancel_perform(sub: Subscription, data: Data, user: policy.Actor) -> str:
    subscription_cancel(
        subscription=sub, actor=user, reason=data["reason"], ticket_url=data["ticket_url"]
    )
    return "Subscription cancelled."


# The approvals app adds its request buttons after "Re-enable QSR" (approvals/admin.py).
SUBSCRIPTION_ACTIONS = (
    ObjectAction(
        name="disable-qsr-for-bug",
        label="Disable QSR for a bug",
        action=A.QSR_DISABLE_FOR_BUG,
        form=BugDisableForm,
        preview=_bug_preview,
        perform=_bug_perform,
        available=is_live,
        refusal=_bug_disable_refusal,
        intro="Only for a confirmed bug: link the bug report and the ticket.",
    ),
    ObjectAction(
        name="enable-qsr",
        label="Re-enable QSR",
        action=_enable_action,
        preview=_enable_preview,
        perform=_enable_perform,
        available=_qsr_may_be_enabled,
    ),
    ObjectAction(
        name="amend",
        label="Amend subscription",
        action=A.AMEND_SUBSCRIPTION,
        form=AmendForm,
        initial=_amend_initial,
        preview=_amend_preview,
        perform=_amend_perform,
        available=is_live,
        refusal=amend_refusal,
        intro="Change the values that are wrong. The next page shows what the change does "
        "to QSR and money before anything is saved. A suspended subscription is amended "
        "after it resumes.",
    ),
    ObjectAction(
        name="cancel",
        label="Cancel subscription",
        action=A.CANCEL_SUBSCRIPTION,
        form=LifecycleWhyForm,
        preview=_cancel_preview,
        perform=_cancel_perform,
        available=is_live,
        danger=True,
    ),
)


# --- Customer ----------------------------------------------------------------------------


def _owner_initial(customer: Customer) -> Data:
    return {"owner": customer.owner_id}


def _owner_preview(customer: Customer, data: Data, user: policy.Actor) -> list[str]:
    return [
        f"{customer} is owned by {data['owner'] or 'nobody'} (was {customer.owner or 'nobody'}): "
        "they see and act on its records, and disputes are routed to them."
    ]


def _owner_perform(customer: Customer, data: Data, user: policy.Actor) -> str:
    customer_assign_owner(customer=customer, owner=data["owner"], actor=user)
    return "Sales manager set."


CUSTOMER_ACTIONS = (
    ObjectAction(
        name="assign-owner",
        label="Assign sales manager",
        action=A.ASSIGN_OWNER,
        form=OwnerForm,
        initial=_owner_initial,
        preview=_owner_preview,
        perform=_owner_perform,
    ),
)
