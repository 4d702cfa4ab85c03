"""factory_boy factories for the portal's records. Defaults make a valid, QSR-eligible
SaaS subscription: 100 seats at 100.00 USD a year, term 2026-01-01 to 2027-01-01."""

from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import ApprovalDecision, ApprovalRequest
from subscriptions.models import (
    Customer,
    Invoice,
    InvoiceLine,
    Namespace,
    Reconciliation,
    SeatUsageReport,
    Subscription,
    Suspension,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(*(Group.objects.get(name=role) for role in extracted))


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    billing_email = factory.Sequence(lambda n: f"billing{n}@example.com")
    currency = "USD"


class NamespaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Namespace

    customer = factory.SubFactory(CustomerFactory)
    kind = Namespace.Kind.SAAS
    name = factory.Sequence(lambda n: f"group-{n}")


class SelfManagedNamespaceFactory(NamespaceFactory):
    kind = Namespace.Kind.SELF_MANAGED
    name = factory.Sequence(lambda n: f"gitlab-{n}.example.com")
    license_key = factory.Sequence(lambda n: f"LIC-{n:08d}")
    instance_id = factory.Sequence(lambda n: f"inst-{n}")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    customer = factory.SubFactory(CustomerFactory)
    namespace = factory.SubFactory(NamespaceFactory, customer=factory.SelfAttribute("..customer"))
    seats = 100
    annual_unit_price = Decimal("100.00")
    currency = factory.SelfAttribute("customer.currency")
    term_start = date(2026, 1, 1)
    term_end = date(2027, 1, 1)


class SeatUsageReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SeatUsageReport

    namespace = factory.SubFactory(NamespaceFactory)
    date = date(2026, 2, 1)
    billable_users = 100


class ReconciliationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reconciliation

    subscription = factory.SubFactory(SubscriptionFactory)
    term_start = factory.SelfAttribute("subscription.term_start")
    quarter = 1
    reconciliation_date = date(2026, 4, 1)
    notify_date = date(2026, 4, 1)
    invoice_date = date(2026, 4, 8)
    currency = factory.SelfAttribute("subscription.currency")


class SuspensionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suspension

    subscription = factory.SubFactory(SubscriptionFactory)
    suspend_date = date(2026, 6, 1)
    resume_date = date(2026, 6, 26)
    ticket_url = "https://tickets.example.com/1"


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    subscription = factory.SubFactory(SubscriptionFactory)
    customer = factory.SelfAttribute("subscription.customer")
    currency = factory.SelfAttribute("subscription.currency")
    issue_date = date(2026, 4, 8)
    idempotency_key = factory.Sequence(lambda n: f"test:{n}")


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    kind = InvoiceLine.Kind.QSR_OVERAGE
    quantity = 10
    unit_price = Decimal("75.00")
    period_start = date(2026, 4, 1)
    period_end = date(2027, 1, 1)
    amount = Decimal("750.00")


class ApprovalRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApprovalRequest

    kind = ApprovalRequest.Kind.QSR_PAUSE
    requester = factory.SubFactory(UserFactory)
    subscription = factory.SubFactory(SubscriptionFactory)
    justification = "Customer disputes the Q1 count."
    ticket_url = "https://tickets.example.com/2"
    currency = factory.SelfAttribute("subscription.currency")
    required_slots = factory.LazyFunction(lambda: ["sales_ops"])


class ApprovalDecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApprovalDecision

    request = factory.SubFactory(ApprovalRequestFactory)
    slot = "sales_ops"
    approver = factory.SubFactory(UserFactory)
    requester = factory.SelfAttribute("request.requester")
    decision = ApprovalDecision.Decision.APPROVE
