"""Helpers shared by the approvals tests: the worked-example account, the state of the
database, and the services called with a ticket and a justification."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core import mail
from django.utils import timezone
from guardian.shortcuts import assign_perm

from approvals.models import ApprovalRequest
from approvals.services import (
    approval_approve,
    approval_request_free_period,
    approval_request_pause,
    approval_request_refund,
    approval_request_reset,
)
from outbox.services import outbox_send_due
from portal import policy
from portal.errors import DomainError
from portal.policy import NotAllowed
from subscriptions import billing
from subscriptions.models import Customer, Reconciliation, Subscription
from tests.factories import CustomerFactory, ReconciliationFactory, SubscriptionFactory

TICKET = "https://tickets.example.com/77"
WHY = "The customer's CI bots were counted as seats."


def own(customer, user) -> None:
    """Make `user` the account's sales manager as the ownership service would (the field
    and the guardian permission), for setting up the cases."""
    Customer.objects.filter(pk=customer.pk).update(owner=user)
    customer.owner = user
    assign_perm(policy.OWN_CUSTOMER, user, customer)


def database_state() -> dict:
    """Every row of the portal's tables, their history and the object permissions."""
    models = [
        m
        for m in apps.get_models()
        if m._meta.app_label in {"approvals", "subscriptions", "guardian"} and not m._meta.proxy
    ]
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


@dataclass
class World:
    """One account owned by `owner`: a QSR subscription in its second quarter whose Q1
    reconciliation charged the DOMAIN worked example (10 seats over 100, 750.00), and
    the people who set up each case (`filer` files requests, `approver` approves them)."""

    owner: object
    customer: Customer
    sub: Subscription
    recon: Reconciliation
    filer: object
    approver: object
    today: object

    def reset(self, sub=None, new_max_seats=None) -> ApprovalRequest:
        return approval_request_reset(
            subscription=sub or self.sub,
            new_max_seats=new_max_seats,
            justification=WHY,
            ticket_url=TICKET,
            actor=self.filer,
            today=self.today,
        )


def account(owner, *, seats=110, price="100.00", in_use=100, max_used=110, **kwargs):
    """A customer owned by `owner` with one subscription whose term started four months
    ago (today is in Q2, so the next charge is the Q2 reconciliation)."""
    today = timezone.localdate()
    term_start = billing.add_months(today.replace(day=1), -4)
    customer = CustomerFactory(**kwargs)
    own(customer, owner)
    sub = SubscriptionFactory(
        customer=customer,
        seats=seats,
        annual_unit_price=Decimal(price),
        term_start=term_start,
        term_end=billing.add_months(term_start, 12),
    )
    ns = sub.namespace
    ns.seats_in_use, ns.max_seats_used = in_use, max_used
    ns.save()
    return customer, sub


def processed_q1(sub) -> Reconciliation:
    """The worked example's Q1: 100 seats paid, max 110, 10 x 25.00 x 3 = 750.00."""
    q1 = billing.reconciliation_dates(sub.term_start)[0]
    return ReconciliationFactory(
        subscription=sub,
        quarter=1,
        reconciliation_date=q1,
        notify_date=q1,
        invoice_date=q1 + timedelta(days=7),
        status=Reconciliation.Status.PROCESSED,
        seats_paid=100,
        max_seats_used=110,
        overage_seats=10,
        annual_unit_price=Decimal("100.00"),
        remaining_quarters=3,
        amount=Decimal("750.00"),
    )


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


@contextmanager
def refused(field: str | None, fragment: str):
    """Expect a DomainError on `field` saying `fragment`, with nothing saved."""
    before = database_state()
    with pytest.raises(DomainError, match=re.escape(fragment)) as excinfo:
        yield
    assert excinfo.value.field == field
    assert database_state() == before


@contextmanager
def not_allowed(fragment: str):
    before = database_state()
    with pytest.raises(NotAllowed, match=re.escape(fragment)):
        yield
    assert database_state() == before


def flush_outbox() -> None:
    """Send what the earlier steps wrote to the outbox, and count mail from here on."""
    outbox_send_due()
    mail.outbox.clear()


def sent_to(user) -> list[str]:
    """Subjects of the emails `user` received."""
    return [m.subject for m in mail.outbox if user.email in m.to]


def pause(sub, actor, today, until=None, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_pause(subscription=sub, until=until, actor=actor, today=today, **kwargs)


def reset(sub, actor, today, new_max_seats=None, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_reset(
        subscription=sub, new_max_seats=new_max_seats, actor=actor, today=today, **kwargs
    )


def refund(recon, actor, today, seats, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_refund(
        reconciliation=recon, seats=seats, actor=actor, today=today, **kwargs
    )


def free_period(sub, actor, today, start=None, days=10, **kwargs):
    kwargs = {"justification": WHY, "ticket_url": TICKET, **kwargs}
    return approval_request_free_period(
        subscription=sub, start=start or today, days=days, actor=actor, today=today, **kwargs
    )


def approve_both(refund_request, p):
    approval_approve(request=refund_request.linked_reset, actor=p.manager)
    return approval_approve(request=refund_request, actor=p.ops)
