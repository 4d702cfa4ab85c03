"""Disputes of a reconciliation (approvals/services/disputes.py): routed to the
account's sales manager, recorded once, resolved by them."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from approvals.models import ApprovalRequest, Dispute
from approvals.services import dispute_record, dispute_refusal, dispute_resolve
from subscriptions.models import Customer, Reconciliation
from tests.approvals.helpers import TICKET, account, fresh, refused, sent_to
from tests.factories import ReconciliationFactory

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status


# --- Disputes ----------------------------------------------------------------------------


def dispute(recon, actor, ticket=TICKET):
    return dispute_record(
        reconciliation=recon, reason="Bots were counted.", ticket_url=ticket, actor=actor
    )


def recon_in(status: str, p) -> Reconciliation:
    _, sub = account(p.owner)
    extra = {"skip_reason": "paused"} if status == "skipped" else {}
    if status == "refunded":
        extra = {"overage_seats": 2, "refunded_seats": 2}
    return ReconciliationFactory(subscription=sub, status=status, **extra)


@pytest.mark.parametrize("status", ["pending", "processed"])
def test_a_dispute_is_routed_to_the_accounts_sales_manager(p, status, committed):
    recon = recon_in(status, p)

    with committed():
        d = dispute(recon, p.support)

    d.refresh_from_db()
    assert (d.status, d.assigned_to, d.recorded_by) == (Dispute.Status.ROUTED, p.owner, p.support)
    assert d.ticket_closed_at is not None
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"Dispute routed to you: {recon}", [p.owner.email])
    ]
    assert "Bots were counted." in mail.outbox[0].body
    assert fresh(recon).status == status  # support changes nothing on it


@pytest.mark.parametrize("status", ["scheduled", "skipped", "refunded", "failed"])
def test_only_a_pending_or_processed_reconciliation_is_disputed(p, status):
    recon = recon_in(status, p)

    with refused(None, "Only a pending or processed reconciliation can be disputed"):
        dispute(recon, p.support)


def test_no_email_when_the_dispute_is_rolled_back(p, django_capture_on_commit_callbacks):
    recon = recon_in("processed", p)

    class Abort(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Abort),
        transaction.atomic(),
    ):
        dispute(recon, p.support)
        raise Abort

    assert callbacks == []
    assert mail.outbox == []
    assert not Dispute.objects.exists()


def test_the_email_waits_for_the_commit(p, django_capture_on_commit_callbacks):
    recon = recon_in("processed", p)

    with django_capture_on_commit_callbacks() as callbacks:
        dispute(recon, p.support)
        assert mail.outbox == []

    assert len(callbacks) == 1
    callbacks[0]()
    assert sent_to(p.owner) == [f"Dispute routed to you: {recon}"]


@pytest.mark.parametrize("owner", ["none", "inactive"])
def test_a_dispute_needs_an_active_sales_manager(p, owner):
    recon = recon_in("processed", p)
    if owner == "none":
        Customer.objects.filter(pk=recon.subscription.customer_id).update(owner=None)
    else:
        type(p.owner).objects.filter(pk=p.owner.pk).update(is_active=False)

    with refused(None, "has no active sales manager to route the dispute to"):
        dispute(recon, p.support)


def test_the_same_ticket_twice_records_one_dispute(p):
    recon = recon_in("processed", p)
    first = dispute(recon, p.support)

    assert dispute(recon, p.support) == first
    with refused(None, "This reconciliation is disputed already"):
        dispute(recon, p.support2, ticket="https://tickets.example.com/other")


def test_the_refusal_the_preview_shows_is_the_one_the_service_raises(p):
    recon = recon_in("processed", p)
    assert dispute_refusal(recon) is None

    first = dispute(recon, p.support)
    assert dispute_refusal(recon) == (
        f"This reconciliation is disputed already (dispute #{first.pk}, routed to {p.owner})."
    )
    assert dispute_refusal(recon_in("scheduled", p)) == (
        "Only a pending or processed reconciliation can be disputed; this one is scheduled."
    )
    unowned = recon_in("pending", p)
    Customer.objects.filter(pk=unowned.subscription.customer_id).update(owner=None)
    unowned = Reconciliation.objects.get(pk=unowned.pk)
    assert dispute_refusal(unowned) == (
        f"{unowned.subscription.customer} has no active sales manager to route the dispute "
        "to; ask sales ops to assign one."
    )


def test_the_sales_manager_resolves_the_dispute(p):
    d = dispute(recon_in("processed", p), p.support)
    with refused("resolution", "Say how it was resolved."):
        dispute_resolve(dispute=d, resolution=" ", actor=p.owner)

    dispute_resolve(dispute=d, resolution="Pause requested.", actor=p.owner)

    d.refresh_from_db()
    assert (d.status, d.resolution) == (Dispute.Status.RESOLVED, "Pause requested.")
    assert d.resolved_at is not None
    assert d.history.latest().history_user == p.owner
    # The same resolution again is a no-op; another one is refused.
    dispute_resolve(dispute=d, resolution="Pause requested.", actor=p.owner)
    with refused(None, "This dispute is resolved already."):
        dispute_resolve(dispute=d, resolution="Something else.", actor=p.owner)


def test_a_dispute_needs_a_reason_and_a_ticket(p):
    recon = recon_in("processed", p)

    with refused("reason", "Say what the customer disputes."):
        dispute_record(reconciliation=recon, reason=" ", ticket_url=TICKET, actor=p.support)
    with refused("ticket_url", "link to the ticket"):
        dispute_record(reconciliation=recon, reason="Bots.", ticket_url="", actor=p.support)
