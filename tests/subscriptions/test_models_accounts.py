"""Invariants of namespaces and seat usage reports (subscriptions/models/accounts.py;
DOMAIN.md "Core records").

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored)."""

from datetime import date

import pytest
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import connection

from subscriptions.models import Namespace, SeatUsageReport
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import (
    CustomerFactory,
    NamespaceFactory,
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
)

pytestmark = pytest.mark.django_db


# --- Namespaces -----------------------------------------------------------------------------


def test_self_managed_namespace_without_a_license_key_is_rejected():
    customer = CustomerFactory()

    namespace = SelfManagedNamespaceFactory.build(customer=customer, license_key="")

    assert_invalid(namespace, "license_key", "A self-managed instance needs a license key.")
    assert_db_rejects(
        Namespace,
        lambda: SelfManagedNamespaceFactory(customer=customer, license_key=""),
        "namespace_self_managed_has_license",
    )


def test_saas_namespace_needs_no_license_key():
    NamespaceFactory.build(customer=CustomerFactory(), license_key="").full_clean()


def test_max_seats_used_below_seats_in_use_is_rejected():
    namespace = NamespaceFactory(seats_in_use=100, max_seats_used=120)

    namespace.max_seats_used = 99
    assert_invalid(namespace, "max_seats_used", "cannot be below seats in use")
    assert_db_rejects(
        Namespace,
        lambda: Namespace.objects.filter(pk=namespace.pk).update(max_seats_used=99),
        "namespace_max_at_least_in_use",
    )


@pytest.mark.parametrize(
    ("factory", "field", "message"),
    [
        (NamespaceFactory, "name", "A SaaS group with this path exists already."),
        (
            SelfManagedNamespaceFactory,
            "license_key",
            "An instance with this license key exists already.",
        ),
    ],
)
def test_duplicate_namespace_identity_fails_validation_on_its_field(factory, field, message):
    existing = factory()

    duplicate = factory.build(customer=CustomerFactory(), **{field: getattr(existing, field)})

    assert_invalid(duplicate, field, message)


@pytest.mark.parametrize(
    ("factory", "field", "constraint"),
    [
        (NamespaceFactory, "name", "namespace_saas_path_unique"),
        (SelfManagedNamespaceFactory, "license_key", "namespace_license_key_unique"),
    ],
)
def test_duplicate_namespace_identity_is_rejected_by_the_database(factory, field, constraint):
    existing = factory()

    assert_db_rejects(Namespace, lambda: factory(**{field: getattr(existing, field)}), constraint)


# --- Seat usage reports ---------------------------------------------------------------------


def test_usage_report_for_an_unknown_namespace_is_rejected():
    missing_id = (Namespace.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1

    report = SeatUsageReportFactory.build(namespace_id=missing_id)
    assert_invalid(report, "namespace", f"namespace instance with id {missing_id} is not a valid")

    def write():
        SeatUsageReport.objects.create(
            namespace_id=missing_id, date=date(2026, 2, 1), billable_users=10
        )
        # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: PostgreSQL checks them
        # at commit, which the test transaction never reaches. Check them now instead.
        connection.check_constraints()

    assert_db_rejects(SeatUsageReport, write, "namespace_id")


@pytest.mark.parametrize("field", ["billable_users", "max_historical_user_count"])
def test_usage_report_with_a_negative_count_is_rejected(field):
    namespace = SelfManagedNamespaceFactory()

    report = SeatUsageReportFactory.build(namespace=namespace, **{field: -1})
    assert_invalid(report, field, "greater than or equal to 0")
    assert_db_rejects(
        SeatUsageReport,
        lambda: SeatUsageReportFactory(namespace=namespace, **{field: -1}),
        f"{field}_check",
    )


def test_second_usage_report_for_the_same_namespace_and_day_is_rejected():
    """Two fields together are at fault, so the error is the form's, not one field's."""
    first = SeatUsageReportFactory()

    second = SeatUsageReportFactory.build(namespace=first.namespace, date=first.date)
    assert_invalid(second, NON_FIELD_ERRORS, "This namespace already has a report for this day.")
    assert_db_rejects(
        SeatUsageReport,
        lambda: SeatUsageReportFactory(namespace=first.namespace, date=first.date),
        "usage_one_report_per_namespace_day",
    )


def test_duplicate_usage_reports_in_one_batch_store_nothing():
    namespace = NamespaceFactory()

    assert_db_rejects(
        SeatUsageReport,
        lambda: SeatUsageReport.objects.bulk_create(
            [
                SeatUsageReport(namespace=namespace, date=date(2026, 2, 1), billable_users=10),
                SeatUsageReport(namespace=namespace, date=date(2026, 2, 1), billable_users=12),
            ]
        ),
        "usage_one_report_per_namespace_day",
    )


def test_usage_reports_on_other_days_or_namespaces_are_valid():
    first = SeatUsageReportFactory()

    SeatUsageReportFactory.build(namespace=first.namespace, date=date(2026, 2, 2)).full_clean()
    SeatUsageReportFactory.build(namespace=NamespaceFactory(), date=first.date).full_clean()
