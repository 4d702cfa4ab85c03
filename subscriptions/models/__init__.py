"""Customers, namespaces, seat usage, subscriptions, reconciliations, suspensions and the
invoice ledger (DOMAIN.md "Core records").

Models hold data and invariants only. The database carries every invariant it can
express (the constraints in each module below); `clean()` repeats the ones a form must
explain field by field, and the cross-record rules a constraint cannot see. State changes
belong to services, never to `save()`.

The records live in one module per area, all re-exported here so that
`from subscriptions.models import X` works for every model and shared name:

- `common.py`: the timestamps base, money and currency shapes, `DateRange`, shared checks;
- `accounts.py`: customers, namespaces, seat usage reports;
- `subscriptions.py`: subscriptions, their choices, the QSR-disabled-for-bugs proxy;
- `reconciliations.py`: quarterly seat reconciliations;
- `suspensions.py`: suspensions and free periods;
- `ledger.py`: invoices and invoice lines;
- `jobs.py`: nightly job runs and their batches.
"""

from subscriptions.models.accounts import Customer, Namespace, NamespaceKind, SeatUsageReport
from subscriptions.models.common import (
    CURRENCY_CHOICES,
    MONEY,
    DateRange,
    TimeStamped,
    check_currency_decimals,
    in_choices,
    qsr_ineligibility,
)
from subscriptions.models.jobs import JobRun, JobRunStatus, NightBatch, NightBatchStatus
from subscriptions.models.ledger import Invoice, InvoiceLine, InvoiceLineKind, InvoiceQuerySet
from subscriptions.models.reconciliations import (
    Reconciliation,
    ReconciliationSkipReason,
    ReconciliationStatus,
)
from subscriptions.models.subscriptions import (
    QsrDisabledForBug,
    QsrDisabledForBugManager,
    Subscription,
    SubscriptionChannel,
    SubscriptionPayment,
    SubscriptionPlan,
    SubscriptionProgram,
    SubscriptionQsrState,
    SubscriptionStatus,
    qsr_ineligibility_words,
)
from subscriptions.models.suspensions import Suspension, SuspensionMode, SuspensionStatus

__all__ = [
    "CURRENCY_CHOICES",
    "MONEY",
    "Customer",
    "DateRange",
    "Invoice",
    "InvoiceLine",
    "InvoiceLineKind",
    "InvoiceQuerySet",
    "JobRun",
    "JobRunStatus",
    "Namespace",
    "NamespaceKind",
    "NightBatch",
    "NightBatchStatus",
    "QsrDisabledForBug",
    "QsrDisabledForBugManager",
    "Reconciliation",
    "ReconciliationSkipReason",
    "ReconciliationStatus",
    "SeatUsageReport",
    "Subscription",
    "SubscriptionChannel",
    "SubscriptionPayment",
    "SubscriptionPlan",
    "SubscriptionProgram",
    "SubscriptionQsrState",
    "SubscriptionStatus",
    "Suspension",
    "SuspensionMode",
    "SuspensionStatus",
    "TimeStamped",
    "check_currency_decimals",
    "in_choices",
    "qsr_ineligibility",
    "qsr_ineligibility_words",
]
