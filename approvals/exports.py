"""The approvals app's CSV export (`portal.export`): approval requests, refunds included.

A refund is an approval request of the kind "QSR refund": the requests list filtered by
that kind exports the refunds, with the reconciliation refunded, the max seats reset it
is linked to and whether the refund is complete (processed, and its reset executed).
"""

from __future__ import annotations

from approvals.models import ApprovalKind, ApprovalStatus
from portal import policy
from portal.export import Column, label
from subscriptions.exports import amount, number


def slots(value, row) -> str:
    return "; ".join(policy.SLOT_LABELS.get(slot, slot) for slot in value or ())


def refund_complete(value, row) -> str:
    if row["kind"] != ApprovalKind.QSR_REFUND:
        return ""
    done = value == ApprovalStatus.EXECUTED and row["linked_reset__status"] == value
    return "yes" if done else "no"


APPROVAL_REQUEST_COLUMNS = (
    number("Request", "id"),
    Column("Kind", "kind", label(ApprovalKind.choices)),
    Column("Status", "status", label(ApprovalStatus.choices)),
    Column("Customer", "subscription__customer__name"),
    Column("Namespace", "subscription__namespace__name"),
    number("Subscription", "subscription_id"),
    Column("Requested by", "requester__username"),
    number("Requested at", "created_at"),
    number("Seats at stake", "seats_at_stake"),
    amount("Amount at stake", "amount_at_stake"),
    Column("Currency", "currency"),
    Column("Required approvals", "required_slots", slots),
    number("Decided at", "decided_at"),
    number("Executed at", "executed_at"),
    Column("Executed by", "executed_by__username"),
    number("Pause until", "pause_until"),
    number("Free from", "free_from"),
    number("Free days", "free_days"),
    number("Reset to", "reset_to"),
    number("Reconciliation refunded", "reconciliation_id"),
    number("Linked reset", "linked_reset_id"),
    Column("Linked reset status", "linked_reset__status", label(ApprovalStatus.choices)),
    Column("Refund complete", "status", refund_complete),
    Column("Justification", "justification"),
    Column("Ticket", "ticket_url"),
)
