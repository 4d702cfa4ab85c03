"""The list pages' book: N subscriptions and N reconciliations, with SQL.

One customer per five subscriptions, one namespace per subscription; N / 10 invoices of
two lines each (one in twenty a credit memo), and up to 10,000 approval requests and
10,000 suspensions. Names carry a hash so that a search term picks out one customer or
namespace, as a real name does. Every thousandth customer belongs to the bench's sales
manager (`SALES_USERNAME`), through the owner column and django-guardian's object
permission, as "Assign sales manager" leaves them.

`seed` empties the billing tables first (`bench.seeding.wipe`); `book_size` tells what a
database holds already, so a rerun can reuse it.
"""

from __future__ import annotations

import time

from bench.seeding import wipe

SUPERUSER = "bench-admin"
SALES_USERNAME = "bench-sales"
OWNED_EVERY = 1000  # customer c is the sales manager's when c % OWNED_EVERY == 0

_CUSTOMERS = """
INSERT INTO subscriptions_customer (id, created_at, updated_at, name, billing_email,
                                    currency, owner_id)
SELECT c, now(), now(),
       'Customer ' || lpad(c::text, 7, '0') || ' ' || substr(md5('c' || c), 1, 8),
       'billing-' || substr(md5('e' || c), 1, 10) || '@customer' || c || '.example',
       (ARRAY['USD', 'EUR', 'GBP'])[1 + c %% 3],
       CASE WHEN c %% %(every)s = 0 THEN %(sales)s END
FROM generate_series(1, %(customers)s) AS c
"""

_NAMESPACES = """
INSERT INTO subscriptions_namespace (id, created_at, updated_at, customer_id, kind, name,
    license_key, instance_id, seats_in_use, max_seats_used, max_seats_used_changed_at,
    usage_counted_from)
SELECT i, now(), now(), 1 + (i - 1) %% %(customers)s, 'saas',
       'group-' || substr(md5('n' || i), 1, 12), '', '', 10, 12, NULL, NULL
FROM generate_series(1, %(n)s) AS i
"""

_SUBSCRIPTIONS = """
INSERT INTO subscriptions_subscription (id, created_at, updated_at, customer_id, namespace_id,
    plan, seats, annual_unit_price, currency, term_start, term_end, term_months, status,
    qsr_state, qsr_paused_until, qsr_bug_url, qsr_ticket_url, qsr_changed_by_id,
    qsr_changed_at, channel, payment_method, program, offline_license)
SELECT i, now(), now(), c, i,
       CASE WHEN i %% 2 = 0 THEN 'premium' ELSE 'ultimate' END, 10 + i %% 990,
       CASE WHEN i %% 2 = 0 THEN 348.00 ELSE 1188.00 END,
       (ARRAY['USD', 'EUR', 'GBP'])[1 + c %% 3],
       start, start + 365, 12,
       CASE WHEN i %% 50 = 0 THEN 'cancelled' ELSE 'active' END,
       CASE WHEN i %% 200 = 0 THEN 'paused' ELSE 'enabled' END,
       CASE WHEN i %% 200 = 0 THEN start + 200 END, '', '', NULL, NULL,
       'direct', 'card', '', false
FROM (SELECT i, 1 + (i - 1) %% %(customers)s AS c, DATE '2023-01-01' + i %% 1000 AS start
      FROM generate_series(1, %(n)s) AS i) AS s
"""

# One reconciliation per subscription: quarter 1-3 of its term; six in ten processed,
# two skipped (paused), one pending, one scheduled in a hundred failed.
_RECONCILIATIONS = """
INSERT INTO subscriptions_reconciliation (id, created_at, updated_at, subscription_id,
    term_start, quarter, reconciliation_date, notify_date, invoice_date, status, skip_reason,
    seats_paid, max_seats_used, overage_seats, annual_unit_price, remaining_quarters, amount,
    currency, refunded_seats, failure_reason, attempts, notified_at, invoiced_at)
SELECT i, now(), now(), i, start, q, start + 91 * q, start + 91 * q + 1, start + 91 * q + 8,
       status, CASE WHEN status = 'skipped' THEN 'paused' ELSE '' END,
       CASE WHEN status = 'processed' THEN 100 END,
       CASE WHEN status = 'processed' THEN 100 + i %% 40 END,
       CASE WHEN status = 'processed' THEN i %% 40 END,
       CASE WHEN status = 'processed' THEN 348.00 END,
       CASE WHEN status = 'processed' THEN 4 - q END,
       CASE WHEN status = 'processed' THEN round((i %% 40) * 348.00 * (4 - q) / 4, 2) END,
       (ARRAY['USD', 'EUR', 'GBP'])[1 + (1 + (i - 1) %% %(customers)s) %% 3],
       0, CASE WHEN status = 'failed' THEN 'No usage reported.' ELSE '' END,
       CASE WHEN status = 'failed' THEN 3 ELSE 1 END, NULL, NULL
FROM (SELECT i, DATE '2023-01-01' + i %% 1000 AS start, 1 + i %% 3 AS q,
             CASE WHEN i %% 100 < 60 THEN 'processed' WHEN i %% 100 < 80 THEN 'skipped'
                  WHEN i %% 100 < 90 THEN 'pending' WHEN i %% 100 < 99 THEN 'scheduled'
                  ELSE 'failed' END AS status
      FROM generate_series(1, %(n)s) AS i) AS r
"""

_INVOICES = """
INSERT INTO subscriptions_invoice (id, created_at, updated_at, customer_id, subscription_id,
    issue_date, currency, idempotency_key)
SELECT j, now(), now(), c, 10 * j, DATE '2023-01-01' + j %% 1000,
       (ARRAY['USD', 'EUR', 'GBP'])[1 + c %% 3], 'bench:' || j
FROM (SELECT j, 1 + (10 * j - 1) %% %(customers)s AS c
      FROM generate_series(1, %(invoices)s) AS j) AS s
"""

# Two lines an invoice: the recurring charge, then a proration charge or (one invoice in
# twenty) a refund credit larger than the charge, which makes it a credit memo.
_LINES = """
INSERT INTO subscriptions_invoiceline (id, invoice_id, kind, description, quantity, unit_price,
    period_start, period_end, amount, reconciliation_id, suspension_id)
SELECT 2 * j - 1 + k, j,
       CASE WHEN k = 0 THEN 'recurring' WHEN j %% 20 = 0 THEN 'refund_credit'
            ELSE 'proration_charge' END,
       CASE WHEN k = 0 THEN 'Seats for the term' ELSE 'Adjustment' END,
       10, 348.00, d, d + 365,
       CASE WHEN k = 0 THEN 3480.00 WHEN j %% 20 = 0 THEN -5000.00 ELSE 120.00 END, NULL, NULL
FROM (SELECT j, DATE '2023-01-01' + j %% 1000 AS d FROM generate_series(1, %(invoices)s) AS j)
     AS s, generate_series(0, 1) AS k
"""

_REQUESTS = """
INSERT INTO approvals_approvalrequest (id, created_at, updated_at, kind, status, requester_id,
    subscription_id, reconciliation_id, linked_reset_id, justification, ticket_url,
    seats_at_stake, amount_at_stake, currency, pause_until, free_from, free_days, reset_to,
    required_slots, decided_at, executed_at, executed_by_id)
SELECT a, now() - make_interval(hours => a), now(),
       CASE WHEN a %% 2 = 0 THEN 'qsr_pause' ELSE 'max_seats_reset' END,
       (ARRAY['pending', 'approved', 'rejected', 'cancelled', 'expired'])[1 + a %% 5],
       %(sales)s, s, NULL, NULL, 'Customer asked on the phone.',
       'https://tickets.example.com/' || a, 5 + a %% 20, 100.00 * (1 + a %% 50),
       (ARRAY['USD', 'EUR', 'GBP'])[1 + (1 + (s - 1) %% %(customers)s) %% 3],
       CASE WHEN a %% 2 = 0 THEN DATE '2027-01-01' END, NULL, NULL, NULL,
       ARRAY['sales_ops'], NULL, NULL, NULL
FROM (SELECT a, 1 + (a * 97) %% %(n)s AS s FROM generate_series(1, %(requests)s) AS a) AS r
"""

_SUSPENSIONS = """
INSERT INTO subscriptions_suspension (id, created_at, updated_at, subscription_id,
    suspend_date, resume_date, mode, extend_term, status, ticket_url, reason)
SELECT k, now(), now(), 1 + (k * 89) %% %(n)s, DATE '2023-01-01' + k %% 1000,
       DATE '2023-01-01' + k %% 1000 + 30, 'credit', false,
       (ARRAY['scheduled', 'active', 'resumed', 'cancelled'])[1 + k %% 4],
       'https://tickets.example.com/s' || k, ''
FROM generate_series(1, %(suspensions)s) AS k
"""

TABLES = {
    "subscriptions_customer": _CUSTOMERS,
    "subscriptions_namespace": _NAMESPACES,
    "subscriptions_subscription": _SUBSCRIPTIONS,
    "subscriptions_reconciliation": _RECONCILIATIONS,
    "subscriptions_invoice": _INVOICES,
    "subscriptions_invoiceline": _LINES,
    "approvals_approvalrequest": _REQUESTS,
    "subscriptions_suspension": _SUSPENSIONS,
}


def book_size() -> tuple[int, int]:
    """(subscriptions, reconciliations) the database holds now."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM subscriptions_subscription),"
            " (SELECT count(*) FROM subscriptions_reconciliation)"
        )
        subscriptions, reconciliations = cursor.fetchone()
    return subscriptions, reconciliations


def users():
    """The bench's superuser and sales manager (created when missing)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from portal.roles import SALES

    User = get_user_model()
    admin, _ = User.objects.get_or_create(
        username=SUPERUSER, defaults={"is_staff": True, "is_superuser": True}
    )
    sales, _ = User.objects.get_or_create(username=SALES_USERNAME, defaults={"is_staff": True})
    sales.groups.add(Group.objects.get(name=SALES))
    return admin, sales


def seed(n: int, log) -> dict[str, float]:
    """Fill the book for `n` subscriptions; the seconds each table took."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from subscriptions.models import Customer

    _, sales = users()
    params = {
        "n": n,
        "customers": max(1, n // 5),
        "invoices": max(1, n // 10),
        "requests": min(10_000, max(1, n // 100)),
        "suspensions": min(10_000, max(1, n // 100)),
        "every": OWNED_EVERY,
        "sales": sales.pk,
    }
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    wipe()
    seconds["wipe"] = time.perf_counter() - started
    with transaction.atomic(), connection.cursor() as cursor:
        # Consistent by construction: skip a million foreign key checks (superuser only).
        cursor.execute("SET LOCAL session_replication_role = replica")
        for table, sql in TABLES.items():
            started = time.perf_counter()
            cursor.execute(sql, params)
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                           f"(SELECT max(id) FROM {table}))", [table])  # fmt: skip
            seconds[table] = time.perf_counter() - started
            log(f"  {table}: {seconds[table]:.1f} s")
        started = time.perf_counter()
        cursor.execute("DELETE FROM guardian_userobjectpermission WHERE user_id = %s", [sales.pk])
        cursor.execute(
            "INSERT INTO guardian_userobjectpermission (permission_id, content_type_id,"
            " object_pk, user_id) SELECT %s, %s, c::text, %s"
            " FROM generate_series(%s, %s, %s) AS c",
            [
                Permission.objects.get(codename="own_customer").pk,
                ContentType.objects.get_for_model(Customer).pk,
                sales.pk,
                OWNED_EVERY,
                params["customers"],
                OWNED_EVERY,
            ],
        )
        seconds["ownership"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(TABLES)}")
    seconds["vacuum analyze"] = time.perf_counter() - started
    log(f"  vacuum analyze: {seconds['vacuum analyze']:.1f} s")
    return seconds
