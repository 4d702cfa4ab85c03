"""Only what can apply is offered: a button whose action the record's state refuses is
shown disabled with the reason (the precondition the service checks on POST, asked the
same way), and a forged POST is still refused, by the view and by the service."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from approvals.models import ApprovalRequest, Dispute
from approvals.services import (
    approval_process_refund,
    approval_request_pause,
    dispute_record,
)
from portal.errors import DomainError
from subscriptions.models import Subscription
from tests.admin_buttons import (
    TICKET,
    change_url,
    do_url,
    live_subscription,
    processed_reconciliation,
    refund_request,
    reset_request,
    snapshot,
    text,
)

pytestmark = pytest.mark.django_db

Status = ApprovalRequest.Status


def button(page: str, label: str) -> str | None:
    """The HTML of the button labelled `label`, or None when it is not offered."""
    match = re.search(rf"<li>(<(?:a|span)[^>]*>{re.escape(label)}</(?:a|span)>)</li>", page)
    return match.group(1) if match else None


def assert_disabled(page: str, label: str, reason: str) -> None:
    html = button(page, label)
    assert html is not None, f"“{label}” is not on the page"
    assert "href=" not in html
    assert 'aria-disabled="true"' in html
    assert "portal-disabled" in html  # the muted style
    assert f'title="{reason}"' in html


def forged(client, obj, name: str, data: dict) -> str:
    """POST the action as if the page had offered it; the page the user is sent back to."""
    before = snapshot()
    response = client.post(do_url(obj, name), {**data, "confirmed": "yes"}, follow=True)
    assert response.redirect_chain == [(change_url(obj), 302)]
    assert snapshot() == before
    return text(response)


WHY = {"justification": "The customer asked.", "ticket_url": TICKET}


# --- A QSR pause on a subscription not on QSR ----------------------------------------------


def test_a_pause_is_not_offered_on_a_subscription_not_on_qsr(client, portal):
    sub = live_subscription(portal, channel=Subscription.Channel.RESELLER)
    client.force_login(portal.owner)
    with pytest.raises(DomainError, match="not on QSR") as refused:
        approval_request_pause(
            subscription=sub, until=None, actor=portal.owner, today=timezone.localdate(), **WHY
        )
    reason = refused.value.message  # the service's own words

    page = text(client.get(change_url(sub)))

    assert_disabled(page, "Request a QSR pause", reason)
    assert reason in forged(client, sub, "request-pause", WHY)


def test_a_pause_is_offered_on_a_subscription_on_qsr(client, portal):
    sub = live_subscription(portal)
    client.force_login(portal.owner)

    page = text(client.get(change_url(sub)))

    assert f'href="{do_url(sub, "request-pause")}"' in button(page, "Request a QSR pause")


def test_a_second_pause_while_one_is_open_is_disabled_with_the_open_one(client, portal):
    sub = live_subscription(portal)
    open_one = reset_request(portal, subscription=sub, kind=ApprovalRequest.Kind.QSR_PAUSE)
    client.force_login(portal.owner)

    page = text(client.get(change_url(sub)))

    assert_disabled(
        page,
        "Request a QSR pause",
        f"A QSR pause request is open for this subscription already (#{open_one.pk}); "
        "decide or cancel it first.",
    )


def test_a_reset_with_nothing_to_waive_is_disabled(client, portal):
    sub = live_subscription(portal)
    sub.namespace.seats_in_use = 120  # as many as the max seats used
    sub.namespace.save()
    client.force_login(portal.users["support"])

    page = text(client.get(change_url(sub)))

    assert_disabled(
        page,
        "Request a max seats reset",
        "Max seats used is 120, the seats in use today: there is nothing to waive.",
    )


# --- A dispute of a reconciliation that has one open --------------------------------------


def test_a_second_dispute_is_not_offered_while_one_is_open(client, portal):
    recon = processed_reconciliation(portal)
    support = portal.users["support"]
    first = dispute_record(
        reconciliation=recon, reason="Bots were counted.", ticket_url=TICKET, actor=support
    )
    client.force_login(support)
    reason = (
        f"This reconciliation is disputed already (dispute #{first.pk}, routed to {portal.owner})."
    )

    page = text(client.get(change_url(recon)))

    assert_disabled(page, "Record a dispute", reason)
    data = {"reason": "Still bots.", "ticket_url": "https://tickets.example.com/2"}
    assert reason in forged(client, recon, "record-dispute", data)
    with pytest.raises(DomainError, match="disputed already"):
        dispute_record(reconciliation=recon, actor=support, **data)
    assert Dispute.objects.filter(reconciliation=recon).count() == 1


def test_a_dispute_is_offered_again_once_the_first_is_resolved(client, portal):
    recon = processed_reconciliation(portal)
    support = portal.users["support"]
    first = dispute_record(
        reconciliation=recon, reason="Bots were counted.", ticket_url=TICKET, actor=support
    )
    Dispute.objects.filter(pk=first.pk).update(
        status=Dispute.Status.RESOLVED, resolved_at=timezone.now()
    )
    client.force_login(support)

    page = text(client.get(change_url(recon)))

    assert f'href="{do_url(recon, "record-dispute")}"' in button(page, "Record a dispute")


# --- Refunds -------------------------------------------------------------------------------


def test_a_second_refund_of_a_reconciliation_is_disabled_with_the_open_one(client, portal):
    open_refund = refund_request(portal)
    client.force_login(portal.owner)

    page = text(client.get(change_url(open_refund.reconciliation)))

    assert_disabled(
        page,
        "Request a refund",
        f"A refund of this reconciliation is open already (request #{open_refund.pk}); "
        "decide or cancel it first.",
    )


def test_a_refund_whose_reset_is_not_approved_cannot_be_processed_yet(client, portal):
    request = refund_request(portal)
    reset = request.linked_reset
    ApprovalRequest.objects.filter(pk=reset.pk).update(status=Status.PENDING)
    desk = portal.users["deal_desk"]
    client.force_login(desk)
    reason = (
        f"The linked max seats reset #{reset.pk} is pending; a refund is processed once "
        "both are approved."
    )

    page = text(client.get(change_url(request)))

    assert_disabled(page, "Process refund", reason)
    assert reason in forged(client, request, "process-refund", {})
    with pytest.raises(DomainError, match="is pending"):
        approval_process_refund(request=request, actor=desk)


# --- What the role may not do is not shown at all ------------------------------------------


def test_a_role_that_may_not_act_sees_no_button_even_a_disabled_one(client, portal):
    sub = live_subscription(portal, channel=Subscription.Channel.RESELLER)
    client.force_login(portal.users["finance"])

    page = text(client.get(change_url(sub)))

    assert button(page, "Request a QSR pause") is None


def test_amending_a_suspended_subscription_waits_for_the_resume(client, portal):
    sub = live_subscription(portal, status=Subscription.Status.SUSPENDED)
    client.force_login(portal.users["sales_ops"])

    page = text(client.get(change_url(sub)))

    assert_disabled(
        page, "Amend subscription", "The subscription is suspended; amend it after it resumes."
    )
