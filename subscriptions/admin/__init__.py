"""Admin for customers, namespaces, usage, subscriptions, reconciliations, suspensions and
the invoice ledger.

The roles see records here (view permission only, narrowed to the accounts they may
see) and change them through the action buttons of a record's page: each is a service
that checks the policy and shows the effect before anything changes. Superusers may also
add customers, namespaces, usage reports, subscriptions and suspensions, and edit the
plain fields of all but subscriptions. What a service or a nightly job owns is read-only
for everyone, superusers included: seat counts, suspension status, reconciliations, the
ledger, and every field of an existing subscription (its terms, eligibility, seats,
price and status change through "Amend subscription" and "Cancel subscription", its QSR
state through the QSR actions).

The admins live in one module per area, like the models, and register when this package
imports them (Django's autodiscover imports `subscriptions.admin`). The admin classes and
the shared names are re-exported here, so `from subscriptions.admin import X` works:

- `common.py`: `money()` and `SubscriptionColumns`, shared by the areas and approvals;
- `jobs.py`: nightly job runs;
- `accounts.py`: customers, namespaces, seat usage reports;
- `subscriptions.py`: subscriptions and the QSR-disabled-for-bugs list;
- `reconciliations.py`: quarterly seat reconciliations;
- `suspensions.py`: suspensions and free periods;
- `ledger.py`: invoices, invoice lines and their columns.
"""

# Importing a module registers its admins. The order is the old single module's: the job
# runs first, then the areas as they followed there (only the QSR-disabled list, once
# last, now registers right after subscriptions). The admin index sorts models anyway.
# isort: off
from subscriptions.admin.jobs import JobRunAdmin
from subscriptions.admin.accounts import CustomerAdmin, NamespaceAdmin, SeatUsageReportAdmin
from subscriptions.admin.subscriptions import QsrDisabledForBugAdmin, SubscriptionAdmin
from subscriptions.admin.reconciliations import ReconciliationAdmin
from subscriptions.admin.suspensions import SuspensionAdmin
from subscriptions.admin.ledger import InvoiceAdmin, InvoiceLineAdmin

# isort: on
from subscriptions.admin.common import SubscriptionColumns, money

__all__ = [
    "CustomerAdmin",
    "InvoiceAdmin",
    "InvoiceLineAdmin",
    "JobRunAdmin",
    "NamespaceAdmin",
    "QsrDisabledForBugAdmin",
    "ReconciliationAdmin",
    "SeatUsageReportAdmin",
    "SubscriptionAdmin",
    "SubscriptionColumns",
    "SuspensionAdmin",
    "money",
]
