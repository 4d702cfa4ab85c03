"""Invariants of the subscriptions models ("Bad input" in the issue, DOMAIN.md "Core
records", "Money", "Suspensions and proration").

Each rule is checked twice where the database can hold it: `full_clean()` (what a form or
the admin shows: the field at fault and why) and a write that skips validation (what a
job or a bug would do: the database refuses and nothing is stored).
"""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection
from django.test import RequestFactory
from simple_history.middleware import HistoryRequestMiddleware
from simple_history.utils import update_change_reason

from subscriptions.models import (
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)
from tests.assertions import assert_db_rejects, assert_invalid
from tests.factories import (
    CustomerFactory,
    InvoiceFactory,
    InvoiceLineFactory,
    NamespaceFactory,
    ReconciliationFactory,
    SeatUsageReportFactory,
    SelfManagedNamespaceFactory,
    SubscriptionFactory,
    SuspensionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# The default subscription's term (tests/factories.py).
TERM_START = date(2026, 1, 1)
TERM_END = date(2027, 1, 1)


def new_subscription(**kwargs) -> Subscription:
    """An unsaved subscription on a fresh namespace of a saved customer."""
    customer = kwargs.pop("customer", None) or CustomerFactory()
    namespace = kwargs.pop("namespace", None) or NamespaceFactory(customer=customer)
    return SubscriptionFactory.build(customer=customer, namespace=namespace, **kwargs)


def subscription_values(**kwargs) -> dict:
    """Field values for `Subscription.objects.create()` on a fresh namespace."""
    customer = CustomerFactory()
    values = {
        "customer": customer,
        "namespace": NamespaceFactory(customer=customer),
        "seats": 100,
        "annual_unit_price": Decimal("100.00"),
        "currency": "USD",
        "term_start": TERM_START,
        "term_end": TERM_END,
    }
    return values | kwargs


# --- Valid records and their history ----------------------------------------------------

MODEL_FACTORIES = [
    pytest.param(CustomerFactory, id="customer"),
    pytest.param(NamespaceFactory, id="saas-namespace"),
    pytest.param(SelfManagedNamespaceFactory, id="self-managed-namespace"),
    pytest.param(SeatUsageReportFactory, id="usage-report"),
    pytest.param(SubscriptionFactory, id="subscription"),
    pytest.param(ReconciliationFactory, id="reconciliation"),
    pytest.param(SuspensionFactory, id="suspension"),
    pytest.param(InvoiceFactory, id="invoice"),
    pytest.param(InvoiceLineFactory, id="invoice-line"),
]


@pytest.mark.parametrize("factory", MODEL_FACTORIES)
def test_valid_record_passes_validation_and_writes_a_history_row(factory):
    obj = factory()

    obj.full_clean()
    assert obj.history.count() == 1
    assert obj.history.get().history_type == "+"


@pytest.mark.parametrize("factory", MODEL_FACTORIES)
def test_every_change_adds_a_history_row(factory):
    obj = factory()

    obj.save()

    assert obj.history.count() == 2
    assert [row.history_type for row in obj.history.all()] == ["~", "+"]


def test_change_reason_set_before_save_is_on_the_history_row():
    subscription = SubscriptionFactory()

    subscription.seats = 110
    subscription._change_reason = "Q1 reconciliation added 10 seats (TICKET-1)"
    subscription.save()

    latest = subscription.history.first()
    assert latest.seats == 110
    assert latest.history_change_reason == "Q1 reconciliation added 10 seats (TICKET-1)"
    assert subscription.history.last().history_change_reason is None


def test_update_change_reason_annotates_the_latest_history_row():
    namespace = NamespaceFactory(seats_in_use=90, max_seats_used=120)

    namespace.max_seats_used = 90
    namespace.save()
    update_change_reason(namespace, "Max seats reset, approved in TICKET-7")

    latest = namespace.history.first()
    assert latest.max_seats_used == 90
    assert latest.history_change_reason == "Max seats reset, approved in TICKET-7"
    assert namespace.history.last().history_change_reason is None


def test_history_user_set_on_the_instance_is_recorded():
    actor = UserFactory()
    suspension = SuspensionFactory()

    suspension.status = Suspension.Status.CANCELLED
    suspension._history_user = actor
    suspension.save()

    assert suspension.history.first().history_user == actor
    assert suspension.history.last().history_user is None


def test_history_user_is_taken_from_the_request():
    """The portal's middleware records the logged-in user on every row of a request."""
    actor = UserFactory()
    subscription = SubscriptionFactory()
    request = RequestFactory().post("/admin/")
    request.user = actor

    def view(request):
        subscription.qsr_state = Subscription.QsrState.PAUSED
        subscription.qsr_paused_until = date(2026, 9, 1)
        subscription.save()

    HistoryRequestMiddleware(view)(request)

    latest = subscription.history.first()
    assert latest.qsr_state == Subscription.QsrState.PAUSED
    assert latest.history_user == actor


# --- Seats, prices, currencies ------------------------------------------------------------


def test_negative_seats_are_rejected():
    assert_invalid(new_subscription(seats=-1), "seats", "greater than or equal to 0")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(seats=-1)),
        "seats_check",
    )


def test_zero_seats_and_a_zero_price_are_allowed():
    subscription = new_subscription(seats=0, annual_unit_price=Decimal("0.00"))

    subscription.full_clean()
    subscription.save()
    assert Subscription.objects.filter(pk=subscription.pk).exists()


def test_negative_price_is_rejected():
    assert_invalid(
        new_subscription(annual_unit_price=Decimal("-0.01")),
        "annual_unit_price",
        "greater than or equal to 0",
    )
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(
            **subscription_values(annual_unit_price=Decimal("-0.01"))
        ),
        "subscription_price_non_negative",
    )


@pytest.mark.parametrize(
    ("currency", "price", "message"),
    [
        ("JPY", Decimal("1200.50"), "JPY amounts have 0 decimal places"),
        ("JPY", Decimal("1200.5"), "JPY amounts have 0 decimal places"),
        ("USD", Decimal("100.005"), "no more than 2 decimal places"),
    ],
)
def test_price_with_more_decimals_than_the_currency_is_rejected(currency, price, message):
    customer = CustomerFactory(currency=currency)

    subscription = new_subscription(customer=customer, currency=currency, annual_unit_price=price)

    assert_invalid(subscription, "annual_unit_price", message)


@pytest.mark.parametrize("price", [Decimal("1200"), Decimal("1200.00")])
def test_whole_jpy_price_is_valid(price):
    customer = CustomerFactory(currency="JPY")

    new_subscription(customer=customer, currency="JPY", annual_unit_price=price).full_clean()


def test_subscription_currency_must_be_the_customers():
    customer = CustomerFactory(currency="EUR")

    subscription = new_subscription(customer=customer, currency="USD")

    assert_invalid(subscription, "currency", "The customer is billed in EUR.")


def test_subscription_namespace_must_belong_to_its_customer():
    other_customers_namespace = NamespaceFactory()

    subscription = new_subscription(namespace=other_customers_namespace)

    assert_invalid(subscription, "namespace", "belongs to another customer")


# --- Term -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term_end",
    [pytest.param(TERM_START, id="equal-to-start"), pytest.param(date(2025, 12, 31), id="before")],
)
def test_term_ending_on_or_before_its_start_is_rejected(term_end):
    assert_invalid(
        new_subscription(term_start=TERM_START, term_end=term_end),
        "term_end",
        "The term must end after it starts.",
    )
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.create(**subscription_values(term_end=term_end)),
        "subscription_term_end_after_start",
    )


def test_one_day_term_is_valid():
    new_subscription(term_start=TERM_START, term_end=date(2026, 1, 2)).full_clean()


# --- QSR state --------------------------------------------------------------------------


def test_qsr_pause_without_an_end_date_is_rejected():
    subscription = SubscriptionFactory()

    subscription.qsr_state = Subscription.QsrState.PAUSED
    assert_invalid(subscription, "qsr_paused_until", "A QSR pause needs an end date.")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.filter(pk=subscription.pk).update(qsr_state="paused"),
        "subscription_pause_has_end",
    )


def test_qsr_pause_with_an_end_date_is_valid():
    subscription = SubscriptionFactory(qsr_state="paused", qsr_paused_until=date(2026, 9, 1))

    subscription.full_clean()
    assert Subscription.objects.get(pk=subscription.pk).qsr_paused_until == date(2026, 9, 1)


def test_qsr_disabled_for_bug_without_a_bug_link_is_rejected():
    subscription = SubscriptionFactory()

    subscription.qsr_state = Subscription.QsrState.DISABLED_FOR_BUG
    assert_invalid(subscription, "qsr_bug_url", "QSR can only be disabled with a link to the bug")
    assert_db_rejects(
        Subscription,
        lambda: Subscription.objects.filter(pk=subscription.pk).update(
            qsr_state="disabled_for_bug"
        ),
        "subscription_bug_disable_has_link",
    )


def test_qsr_disabled_for_bug_with_a_bug_link_is_valid():
    subscription = SubscriptionFactory(
        qsr_state="disabled_for_bug", qsr_bug_url="https://bugs.example.com/42"
    )

    subscription.full_clean()
    assert Subscription.objects.get(pk=subscription.pk).qsr_bug_url.endswith("/42")


# --- One live subscription per namespace --------------------------------------------------


@pytest.mark.parametrize("live_status", ["active", "suspended"])
def test_second_live_subscription_on_a_namespace_fails_validation(live_status):
    live = SubscriptionFactory(status=live_status)

    second = new_subscription(customer=live.customer, namespace=live.namespace)

    assert_invalid(second, "namespace", "This namespace already has a live subscription.")


@pytest.mark.parametrize("live_status", ["active", "suspended"])
def test_second_live_subscription_on_a_namespace_is_rejected_by_the_database(live_status):
    live = SubscriptionFactory(status=live_status)

    assert_db_rejects(
        Subscription,
        lambda: SubscriptionFactory(customer=live.customer, namespace=live.namespace),
        "subscription_one_live_per_namespace",
    )
    with pytest.raises(ValidationError) as excinfo:
        new_subscription(customer=live.customer, namespace=live.namespace).full_clean()
    assert "This namespace already has a live subscription." in str(excinfo.value)


@pytest.mark.parametrize("ended_status", ["cancelled", "expired"])
def test_a_new_subscription_may_follow_an_ended_one_on_the_namespace(ended_status):
    ended = SubscriptionFactory(status=ended_status)

    renewal = new_subscription(
        customer=ended.customer,
        namespace=ended.namespace,
        term_start=TERM_END,
        term_end=date(2028, 1, 1),
    )
    renewal.full_clean()
    renewal.save()

    assert ended.namespace.subscriptions.count() == 2


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


# --- Reconciliations ------------------------------------------------------------------------


def test_second_reconciliation_for_the_same_subscription_term_and_quarter_is_rejected():
    """Three fields together are at fault, so the error is the form's, not one field's."""
    first = ReconciliationFactory()

    second = ReconciliationFactory.build(subscription=first.subscription)
    assert_invalid(second, NON_FIELD_ERRORS, "This quarter of this term is reconciled already.")
    assert_db_rejects(
        Reconciliation,
        lambda: ReconciliationFactory(subscription=first.subscription),
        "reconciliation_once_per_term_quarter",
    )


def test_other_quarters_and_terms_of_the_subscription_may_be_reconciled():
    first = ReconciliationFactory()

    ReconciliationFactory.build(subscription=first.subscription, quarter=2).full_clean()
    ReconciliationFactory.build(subscription=first.subscription, term_start=TERM_END).full_clean()


def test_skipped_reconciliation_without_a_reason_fails_validation_on_skip_reason():
    reconciliation = ReconciliationFactory()

    reconciliation.status = Reconciliation.Status.SKIPPED
    assert_invalid(reconciliation, "skip_reason", "needs a reason")


def test_skipped_reconciliation_without_a_reason_is_rejected_by_the_database():
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(status="skipped"),
        "reconciliation_skip_has_reason",
    )


def test_skip_reason_on_a_reconciliation_that_was_not_skipped_is_rejected_by_the_database():
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(skip_reason="paused"),
        "reconciliation_skip_has_reason",
    )


def test_skipped_reconciliation_with_a_reason_is_valid():
    reconciliation = ReconciliationFactory(status="skipped", skip_reason="paused")

    reconciliation.full_clean()
    assert reconciliation.get_skip_reason_display() == "QSR paused"


@pytest.mark.parametrize(
    ("changes", "field", "constraint"),
    [
        ({"quarter": 4}, "quarter", "reconciliation_quarter_1_3"),
        ({"quarter": 0}, "quarter", "reconciliation_quarter_1_3"),
        (
            {"overage_seats": 5, "refunded_seats": 6},
            "refunded_seats",
            "reconciliation_refund_within_overage",
        ),
    ],
)
def test_reconciliation_range_rules_are_held_by_the_database(changes, field, constraint):
    reconciliation = ReconciliationFactory()

    assert_db_rejects(
        Reconciliation,
        lambda: Reconciliation.objects.filter(pk=reconciliation.pk).update(**changes),
        constraint,
    )


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"quarter": 4}, "quarter", "less than or equal to 3"),
        ({"overage_seats": 5, "refunded_seats": 6}, "refunded_seats", "more seats than"),
    ],
)
def test_reconciliation_range_rules_fail_validation_on_their_field(changes, field, fragment):
    reconciliation = ReconciliationFactory()

    for name, value in changes.items():
        setattr(reconciliation, name, value)
    assert_invalid(reconciliation, field, fragment)


# --- Suspensions ----------------------------------------------------------------------------


INSIDE_TERM = "Must lie inside the term (2026-01-01 to 2027-01-01)."
BY_TERM_END = "Must be no later than the term end (2027-01-01)."


@pytest.mark.parametrize(
    ("suspend_date", "resume_date", "field", "message"),
    [
        pytest.param(
            date(2025, 12, 1), date(2026, 1, 15), "suspend_date", INSIDE_TERM, id="starts-before"
        ),
        pytest.param(
            TERM_END, date(2027, 1, 10), "suspend_date", INSIDE_TERM, id="starts-on-term-end"
        ),
        pytest.param(
            date(2026, 12, 1), date(2027, 1, 2), "resume_date", BY_TERM_END, id="resumes-after"
        ),
    ],
)
def test_suspension_outside_the_term_is_rejected(suspend_date, resume_date, field, message):
    """A cross-record rule: validation holds it, no database constraint can."""
    subscription = SubscriptionFactory()

    suspension = SuspensionFactory.build(
        subscription=subscription, suspend_date=suspend_date, resume_date=resume_date
    )

    assert_invalid(suspension, field, message)


def test_suspension_resuming_on_the_term_end_is_valid():
    SuspensionFactory.build(
        subscription=SubscriptionFactory(), suspend_date=date(2026, 12, 1), resume_date=TERM_END
    ).full_clean()


@pytest.mark.parametrize("resume_date", [date(2026, 6, 1), date(2026, 5, 31)])
def test_suspension_resuming_on_or_before_its_start_is_rejected(resume_date):
    subscription = SubscriptionFactory()

    suspension = SuspensionFactory.build(
        subscription=subscription, suspend_date=date(2026, 6, 1), resume_date=resume_date
    )
    assert_invalid(suspension, "resume_date", "must be after the suspend date")
    assert_db_rejects(
        Suspension,
        lambda: SuspensionFactory(
            subscription=subscription, suspend_date=date(2026, 6, 1), resume_date=resume_date
        ),
        "suspension_resume_after_suspend",
    )


@pytest.mark.parametrize(
    ("suspend_date", "resume_date"),
    [
        pytest.param(date(2026, 6, 10), date(2026, 7, 10), id="starts-inside"),
        pytest.param(date(2026, 5, 1), date(2026, 6, 2), id="ends-inside"),
        pytest.param(date(2026, 5, 1), date(2026, 7, 1), id="encloses"),
        pytest.param(date(2026, 6, 1), date(2026, 6, 26), id="same-dates"),
    ],
)
def test_overlapping_suspension_of_the_same_subscription_is_rejected(suspend_date, resume_date):
    """Both dates together are at fault, so the error is the form's, not one field's."""
    existing = SuspensionFactory()  # 2026-06-01 to 2026-06-26

    overlapping = SuspensionFactory.build(
        subscription=existing.subscription, suspend_date=suspend_date, resume_date=resume_date
    )
    assert_invalid(
        overlapping, NON_FIELD_ERRORS, "This overlaps another suspension of the subscription."
    )
    assert_db_rejects(
        Suspension,
        lambda: SuspensionFactory(
            subscription=existing.subscription,
            suspend_date=suspend_date,
            resume_date=resume_date,
        ),
        "suspension_no_overlap",
    )


def test_suspension_may_overlap_a_cancelled_one():
    cancelled = SuspensionFactory(status=Suspension.Status.CANCELLED)

    replacement = SuspensionFactory.build(
        subscription=cancelled.subscription,
        suspend_date=date(2026, 6, 10),
        resume_date=date(2026, 7, 10),
    )
    replacement.full_clean()
    replacement.save()

    assert cancelled.subscription.suspensions.count() == 2


def test_reviving_a_cancelled_suspension_that_overlaps_is_rejected():
    cancelled = SuspensionFactory(status=Suspension.Status.CANCELLED)
    SuspensionFactory(subscription=cancelled.subscription, suspend_date=date(2026, 6, 10))

    cancelled.status = Suspension.Status.SCHEDULED
    assert_invalid(
        cancelled, NON_FIELD_ERRORS, "This overlaps another suspension of the subscription."
    )
    assert_db_rejects(
        Suspension,
        lambda: Suspension.objects.filter(pk=cancelled.pk).update(status="scheduled"),
        "suspension_no_overlap",
    )


def test_form_without_the_status_field_is_still_told_about_an_overlap():
    existing = SuspensionFactory()

    overlapping = SuspensionFactory.build(subscription=existing.subscription)

    with pytest.raises(ValidationError) as excinfo:
        overlapping.full_clean(exclude=["status"])
    assert excinfo.value.message_dict == {
        NON_FIELD_ERRORS: ["This overlaps another suspension of the subscription."]
    }


def test_back_to_back_suspensions_and_other_subscriptions_do_not_overlap():
    """The resume date is exclusive: the next suspension may start on it."""
    existing = SuspensionFactory()  # 2026-06-01 to 2026-06-26

    SuspensionFactory.build(
        subscription=existing.subscription,
        suspend_date=date(2026, 6, 26),
        resume_date=date(2026, 7, 1),
    ).full_clean()
    SuspensionFactory.build(subscription=SubscriptionFactory()).full_clean()


@pytest.mark.parametrize("mode", ["freeze", "free_period"])
def test_freeze_or_free_period_that_does_not_extend_the_term_is_rejected_by_the_database(mode):
    suspension = SuspensionFactory()

    assert_db_rejects(
        Suspension,
        lambda: Suspension.objects.filter(pk=suspension.pk).update(mode=mode, extend_term=False),
        "suspension_freeze_extends",
    )


# --- Invoice lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("proration_credit", Decimal("0.01")),
        ("refund_credit", Decimal("250.00")),
        ("recurring", Decimal("-0.01")),
        ("qsr_overage", Decimal("-750.00")),
        ("annual_true_up", Decimal("-1.00")),
        ("proration_charge", Decimal("-7035.62")),
    ],
)
def test_invoice_line_whose_sign_contradicts_its_kind_is_rejected(kind, amount):
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, kind=kind, amount=amount)
    assert_invalid(line, "amount", "Credit lines are negative and charge lines positive.")
    assert_db_rejects(
        InvoiceLine,
        lambda: InvoiceLineFactory(invoice=invoice, kind=kind, amount=amount),
        "invoice_line_sign_matches_kind",
    )


@pytest.mark.parametrize(
    ("kind", "amount"),
    [
        ("proration_credit", Decimal("-7035.62")),
        ("refund_credit", Decimal("0.00")),
        ("proration_charge", Decimal("7035.62")),
        ("recurring", Decimal("0.00")),
    ],
)
def test_invoice_line_with_the_sign_of_its_kind_is_valid(kind, amount):
    line = InvoiceLineFactory(kind=kind, amount=amount)

    line.full_clean()
    assert line.invoice.lines.get().amount == amount


def test_jpy_invoice_line_with_decimals_is_rejected():
    invoice = InvoiceFactory(subscription=SubscriptionFactory(customer__currency="JPY"))

    line = InvoiceLineFactory.build(
        invoice=invoice, unit_price=Decimal("750"), amount=Decimal("7500.50")
    )

    assert_invalid(line, "amount", "JPY amounts have 0 decimal places")


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("unit_price", Decimal("-1.00"), "invoice_line_price_non_negative"),
        ("quantity", -1, "quantity_check"),
    ],
)
def test_invoice_line_with_a_negative_unit_price_or_quantity_is_rejected(field, value, constraint):
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, **{field: value})
    assert_invalid(line, field, "greater than or equal to 0")
    assert_db_rejects(
        InvoiceLine, lambda: InvoiceLineFactory(invoice=invoice, **{field: value}), constraint
    )


def test_invoice_line_period_ending_on_its_start_is_rejected():
    invoice = InvoiceFactory()

    line = InvoiceLineFactory.build(invoice=invoice, period_end=date(2026, 4, 1))
    assert_invalid(line, "period_end", "The service period must end after it starts.")
    assert_db_rejects(
        InvoiceLine,
        lambda: InvoiceLineFactory(invoice=invoice, period_end=date(2026, 4, 1)),
        "invoice_line_period",
    )


# --- Choice fields ----------------------------------------------------------------------------

CHOICE_FIELDS = [
    pytest.param(NamespaceFactory, "kind", "namespace_kind_valid", id="namespace-kind"),
    pytest.param(CustomerFactory, "currency", "customer_currency_known", id="customer-currency"),
    pytest.param(
        SubscriptionFactory, "currency", "subscription_currency_known", id="subscription-currency"
    ),
    pytest.param(InvoiceFactory, "currency", "invoice_currency", id="invoice-currency"),
    pytest.param(
        ReconciliationFactory,
        "currency",
        "reconciliation_currency",
        id="reconciliation-currency",
    ),
    pytest.param(SubscriptionFactory, "status", "subscription_status", id="subscription-status"),
    pytest.param(SubscriptionFactory, "qsr_state", "subscription_qsr", id="subscription-qsr"),
    pytest.param(SubscriptionFactory, "channel", "subscription_channel", id="channel"),
    pytest.param(SubscriptionFactory, "payment_method", "sub_payment", id="payment-method"),
    pytest.param(SubscriptionFactory, "program", "subscription_program", id="program"),
    pytest.param(
        SubscriptionFactory,
        "plan",
        "subscription_plan",
        id="plan",
    ),
    pytest.param(
        ReconciliationFactory, "status", "reconciliation_status", id="reconciliation-status"
    ),
    pytest.param(
        # Skipped, so that only the unknown reason (not a missing one) breaks a rule.
        lambda: ReconciliationFactory(status="skipped", skip_reason="paused"),
        "skip_reason",
        "reconciliation_skip_reason",
        id="skip-reason",
    ),
    pytest.param(SuspensionFactory, "mode", "suspension_mode", id="suspension-mode"),
    pytest.param(
        SuspensionFactory,
        "status",
        "suspension_status",
        id="suspension-status",
    ),
    pytest.param(InvoiceLineFactory, "kind", "invoice_line_kind", id="invoice-line-kind"),
]


@pytest.mark.parametrize(("factory", "field", "constraint"), CHOICE_FIELDS)
def test_invalid_choice_or_unknown_currency_is_rejected(factory, field, constraint):
    obj = factory()
    model = type(obj)
    bad = "XYZ" if field == "currency" else "bogus"

    setattr(obj, field, bad)
    assert_invalid(obj, field, f"Value '{bad}' is not a valid choice.")
    assert_db_rejects(
        model, lambda: model.objects.filter(pk=obj.pk).update(**{field: bad}), constraint
    )
