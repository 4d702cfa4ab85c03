"""The text of the customer's reconciliation notice (DOMAIN.md "Timeline": notified on
the notice day, invoiced a week later).

The notify step records each notice in the outbox by reference, with the pricing it
wrote in the same transaction; the outbox sender asks here for the text when it sends.
A reconciliation's pricing does not change once it is pending, so the text is the one
that stood when the customer was notified.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import cast

from subscriptions import billing
from subscriptions.models import Reconciliation


def reconciliation_notice_texts(ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(subject, body) of the notices of these reconciliations, by id."""
    recons = Reconciliation.objects.filter(pk__in=ids, amount__isnull=False).select_related(
        "subscription__customer", "subscription__namespace"
    )
    return {recon.pk: _notice(recon) for recon in recons}


def _notice(recon: Reconciliation) -> tuple[str, str]:
    sub = recon.subscription
    # Only reconciliations with an amount get a notice (amount__isnull=False above).
    amount = billing.format_money(cast(Decimal, recon.amount), recon.currency)
    body = (
        f"Hello {sub.customer.name},\n\n"
        f"Your subscription for {sub.namespace.name} used up to {recon.max_seats_used} seats "
        f"in quarter {recon.quarter} of the term that started {recon.term_start}, "
        f"{recon.overage_seats} more than the {recon.seats_paid} seats paid for.\n"
        f"As agreed in the quarterly reconciliation terms, we will invoice {amount} "
        f"({recon.overage_seats} seats for the {recon.remaining_quarters} remaining "
        f"quarter(s) of the term) on {recon.invoice_date}.\n\n"
        "If this looks wrong, reply to this email before the invoice date.\n"
    )
    subject = f"Quarterly seat reconciliation: {amount} due on {recon.invoice_date}"
    return subject, body
