"""Deterministic demo data for `manage.py seed_demo`.

The same seed and anchor date always give the same records: customers and their
namespaces, a year of daily usage with growth and dips, subscriptions in every QSR state,
reconciliations priced by the real money functions, suspensions with their proration
lines, and the invoices of all of it.

- `book.py`: `seed`, which writes the whole book in order.
- `accounts.py`: customer names, currencies, prices, and the subscriptions' variants.
- `usage.py`: the daily usage series.
- `history.py`: the past up to the anchor date: invoices, suspensions, reconciliations.

The demo users and their logins are `seed_demo`'s own (the approvals app's command); the
approval workflows on top of this book are in `approvals/demo_data.py`.
"""

from subscriptions.demo_data.accounts import customer_names
from subscriptions.demo_data.book import Seeded, seed

__all__ = ["Seeded", "customer_names", "seed"]
