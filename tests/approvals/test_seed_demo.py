from datetime import date
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from portal import roles
from subscriptions import billing
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
    qsr_ineligibility,
)

pytestmark = pytest.mark.django_db
ANCHOR = date(2026, 11, 21)


def seed(tmp_path, *extra):
    out = StringIO()
    call_command(
        "seed_demo",
        "--customers=40",
        f"--today={ANCHOR}",
        f"--logins-file={tmp_path / 'logins.txt'}",
        "--force",
        "--no-progress",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def fingerprint():
    """Everything a user would see of the demo book, without database ids."""
    return {
        "customers": sorted(Customer.objects.values_list("name", "currency", "owner__username")),
        "namespaces": sorted(
            Namespace.objects.values_list("name", "kind", "seats_in_use", "max_seats_used")
        ),
        "usage": SeatUsageReport.objects.count(),
        "usage_sum": sum(SeatUsageReport.objects.values_list("billable_users", flat=True)),
        "subscriptions": sorted(
            Subscription.objects.values_list(
                "namespace__name", "seats", "annual_unit_price", "term_start", "term_end",
                "qsr_state", "status",
            )
        ),
        "reconciliations": sorted(
            Reconciliation.objects.values_list(
                "subscription__namespace__name", "quarter", "status", "skip_reason", "amount"
            ),
            key=str,
        ),
        "lines": sorted(
            InvoiceLine.objects.values_list(
                "invoice__subscription__namespace__name", "kind", "quantity", "amount"
            ),
            key=str,
        ),
    }  # fmt: skip


def test_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)


def test_seed_covers_every_state_the_demo_must_show(tmp_path):
    output = seed(tmp_path)

    assert Customer.objects.count() == 40
    assert set(Namespace.objects.values_list("kind", flat=True)) == {"saas", "self_managed"}
    # A year of daily usage for every namespace.
    assert SeatUsageReport.objects.count() == 365 * Namespace.objects.count()
    states = set(Subscription.objects.values_list("qsr_state", flat=True))
    assert states == {"enabled", "disabled_for_bug", "paused"}
    reasons = set()
    for sub in Subscription.objects.all():
        reasons.update(qsr_ineligibility(sub))
    assert reasons == set(billing.QSR_INELIGIBILITY_REASONS)
    statuses = set(Reconciliation.objects.values_list("status", flat=True))
    assert {"pending", "processed", "skipped"} <= statuses
    assert Suspension.objects.exists()
    assert "Demo data loaded" in output


def test_every_invoiced_reconciliation_has_its_invoice_at_the_reconciled_amount(tmp_path):
    seed(tmp_path)
    invoiced = Reconciliation.objects.filter(invoiced_at__isnull=False)
    assert invoiced.exists()
    for recon in invoiced:
        line = InvoiceLine.objects.get(reconciliation=recon)
        assert line.amount == recon.amount
        assert line.quantity == recon.overage_seats
    # A reconciliation with nothing over writes no invoice.
    zero = Reconciliation.objects.filter(status="processed", overage_seats=0)
    assert zero.exists()
    assert not InvoiceLine.objects.filter(reconciliation__in=zero).exists()
    # Every subscription has its recurring charge for the term.
    assert Invoice.objects.filter(lines__kind="recurring").count() == Subscription.objects.count()


def test_seed_is_idempotent_and_reset_regenerates_the_same_book(tmp_path):
    seed(tmp_path)
    first = fingerprint()
    passwords = (tmp_path / "logins.txt").read_text()

    output = seed(tmp_path)
    assert "already" in output
    assert fingerprint() == first
    assert (tmp_path / "logins.txt").read_text() == passwords

    seed(tmp_path, "--reset")
    assert fingerprint() == first


def test_printed_demo_logins_work(tmp_path):
    output = seed(tmp_path)
    for line in (tmp_path / "logins.txt").read_text().splitlines():
        username, password, *_ = line.split()  # sales_ops: its two-factor secret too
        assert f"{username}" in output and password in output
        # Through the login page: django-axes refuses authenticate() without a request.
        client = Client()
        response = client.post("/admin/login/", {"username": username, "password": password})
        assert response.status_code == 302, username
        assert client.session["_auth_user_id"], username


def test_sales_managers_own_the_customers_between_them(tmp_path):
    seed(tmp_path)
    owners = set(Customer.objects.values_list("owner__username", flat=True))
    assert owners == {"sales", "sales2", "sales3"}


def test_refuses_to_run_without_debug(tmp_path, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo", f"--logins-file={tmp_path / 'l.txt'}", "--no-progress")
    assert not Customer.objects.exists()
