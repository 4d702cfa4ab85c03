"""Quarterly subscription reconciliation: schedule, notify, invoice, skip, fail and retry.

Each step selects its work by status and date in the query, so a rerun finds nothing
left to do, and works through bounded batches. A batch is one transaction that locks
its rows with `SKIP LOCKED`: two workers on the same night split the work instead of
doubling it, and the unique constraint on (subscription, term, quarter) and the
invoices' idempotency keys are the last line of defence.

One module a step, `create`, `notify` and `invoice`, each with its `BatchedStep`;
`common` holds what they share: live subscriptions, the skip rules, suspended periods,
and recording a failure for the next nights to retry.
"""

from subscriptions.services.reconciliations.common import (
    LIVE,
    MAX_ATTEMPTS,
    QsrTerms,
    reconciliation_fail,
    skip_reason,
)
from subscriptions.services.reconciliations.create import (
    CREATE,
    INVOICE_DELAY,
    SAAS_NOTICE_DELAY,
    SELF_MANAGED_NOTICE_DELAY,
    reconciliations_create_due,
)
from subscriptions.services.reconciliations.invoice import INVOICE, reconciliations_invoice_due
from subscriptions.services.reconciliations.notify import (
    NOTICE,
    NOTIFY,
    reconciliations_notify_due,
)

__all__ = [
    "CREATE",
    "INVOICE",
    "INVOICE_DELAY",
    "LIVE",
    "MAX_ATTEMPTS",
    "NOTICE",
    "NOTIFY",
    "SAAS_NOTICE_DELAY",
    "SELF_MANAGED_NOTICE_DELAY",
    "QsrTerms",
    "reconciliation_fail",
    "reconciliations_create_due",
    "reconciliations_invoice_due",
    "reconciliations_notify_due",
    "skip_reason",
]
