"""What every subscriptions model has (subscriptions/models/): a valid record passes
validation and writes a history row with who and why; a choice field or currency outside
its list is refused by validation and by the database."""

from datetime import date

import pytest
from django.test import RequestFactory
from simple_history.middleware import HistoryRequestMiddleware
from simple_history.utils import update_change_reason

from subscriptions.models import Subscription, Suspension
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
