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

from portal.formats import count, day
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
    overage = count(recon.overage_seats or 0, "seat")
    quarters = count(recon.remaining_quarters or 0, "remaining quarter")
    body = (
        f"Hello {sub.customer.name},\n\n"
        f"Your subscription for {sub.namespace.name} used up to "
        f"{count(recon.max_seats_used or 0, 'seat')} in quarter {recon.quarter} of the term "
        f"that started {day(recon.term_start)}, {recon.overage_seats} more than the "
        f"{count(recon.seats_paid or 0, 'seat')} paid for.\n"
        f"As agreed in the quarterly reconciliation terms, we will invoice {amount} "
        f"({overage} for the {quarters} of the term) on {day(recon.invoice_date)}.\n\n"
        "If this looks wrong, reply to this email before the invoice date.\n"
    )
    subject = f"Quarterly seat reconciliation: {amount} due on {day(recon.invoice_date)}"
    return subject, body
