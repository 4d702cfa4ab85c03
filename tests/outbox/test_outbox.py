"""Every email is sent once and none is lost: the outbox under a killed process, a
flaky mail server and a sender that dies holding messages."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db.models import F

from outbox import services as outbox
from outbox.models import OutboxMessage
from outbox.tasks import outbox_send
from subscriptions.models import Namespace
from subscriptions.services.nightly import nightly_run
from tests.factories import SubscriptionFactory

Q1_END = date(2026, 4, 1)


class RefusingBackend(EmailBackend):
    """A mail server that refuses one address and delivers the rest (locmem)."""

    refused = "refuse@example.com"

    def send_messages(self, messages):
        for message in messages:
            if self.refused in message.to:
                raise OSError("550 mailbox unavailable")
        return super().send_messages(messages)


def book(count: int):
    subs = SubscriptionFactory.create_batch(count)
    Namespace.objects.update(seats_in_use=110, max_seats_used=110)
    return subs


def delivered() -> list[tuple[str, ...]]:
    return sorted(tuple(m.to) for m in mail.outbox)


@pytest.fixture
def killed_before_handover(monkeypatch):
    """The process dies right after the change commits, before it can ask a worker to
    send: the request to send never happens."""
    monkeypatch.setattr(outbox, "_request_sending", lambda: None)


@pytest.mark.django_db
def test_notices_committed_but_never_handed_over_are_sent_once_by_the_sweep(
    killed_before_handover, django_capture_on_commit_callbacks
):
    subs = book(3)
    with django_capture_on_commit_callbacks(execute=True):
        nightly_run(run_date=Q1_END)
    assert mail.outbox == []
    assert OutboxMessage.objects.filter(status="pending").count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        nightly_run(run_date=Q1_END)  # the operator runs the night again
    assert OutboxMessage.objects.count() == 3  # the rerun writes no second notice

    assert outbox_send.delay().get() == {"sent": 3}  # the sweep
    assert outbox_send.delay().get() == {}
    assert delivered() == sorted((s.customer.billing_email,) for s in subs)
    notice = mail.outbox[0]
    assert notice.subject == "Quarterly seat reconciliation: USD 750.00 due on 2026-04-08"
    assert "used up to 110 seats in quarter 1" in notice.body
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db
def test_a_committed_change_is_sent_right_after_commit(django_capture_on_commit_callbacks):
    book(2)
    with django_capture_on_commit_callbacks(execute=True):
        nightly_run(run_date=Q1_END)
    assert len(mail.outbox) == 2
    assert not OutboxMessage.objects.exclude(status="sent").exists()


@pytest.mark.django_db
def test_a_dry_run_or_rolled_back_night_writes_no_email():
    book(2)
    nightly_run(run_date=Q1_END, dry_run=True)
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_a_refused_address_is_retried_alone_and_nobody_gets_two(settings, killed_before_handover):
    settings.EMAIL_BACKEND = "tests.outbox.test_outbox.RefusingBackend"
    subs = book(3)
    subs[1].customer.billing_email = RefusingBackend.refused
    subs[1].customer.save()
    nightly_run(run_date=Q1_END)

    assert outbox.outbox_send_due() == {"sent": 2, "retry_later": 1}
    stuck = OutboxMessage.objects.get(to=[RefusingBackend.refused])
    assert (stuck.status, stuck.attempts) == ("pending", 1)
    assert "550 mailbox unavailable" in stuck.last_error
    assert outbox.outbox_send_due() == {}  # not before its retry time

    RefusingBackend.refused = "nobody@example.com"  # the mailbox is back
    try:
        OutboxMessage.objects.filter(pk=stuck.pk).update(next_attempt_at=F("created_at"))
        assert outbox.outbox_send_due() == {"sent": 1}
    finally:
        RefusingBackend.refused = "refuse@example.com"
    assert delivered() == sorted((s.customer.billing_email,) for s in subs)


@pytest.mark.django_db
def test_a_message_that_keeps_failing_is_given_up_and_can_be_queued_again(
    settings, killed_before_handover, admin_client
):
    settings.EMAIL_BACKEND = "tests.outbox.test_outbox.RefusingBackend"
    (sub,) = book(1)
    sub.customer.billing_email = RefusingBackend.refused
    sub.customer.save()
    nightly_run(run_date=Q1_END)
    for _ in range(outbox.MAX_ATTEMPTS):
        OutboxMessage.objects.update(next_attempt_at=None)
        outbox.outbox_send_due()
    message = OutboxMessage.objects.get()
    assert (message.status, message.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert outbox.outbox_send_due() == {}

    page = admin_client.get("/admin/outbox/outboxmessage/?status=failed")
    assert page.status_code == 200
    assert "Failed (gave up)" in page.content.decode()
    # Kinds in words, in the column and in the filter, which filters by the code.
    assert "Reconciliation notice" in page.content.decode()
    assert "reconciliation_notice</td>" not in page.content.decode()
    assert (
        admin_client.get("/admin/outbox/outboxmessage/?kind=approval").context["cl"].result_count
        == 0
    )

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    retried = admin_client.post(
        "/admin/outbox/outboxmessage/",
        {"action": "retry_failed", "_selected_action": [message.pk]},
        follow=True,
    )
    assert "1 failed email queued again." in retried.content.decode()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("pending", 0)
    assert outbox.outbox_send_due() == {"sent": 1}


@pytest.mark.django_db
def test_messages_held_by_a_sender_that_died_are_sent_once_its_claim_runs_out(
    killed_before_handover,
):
    book(2)
    nightly_run(run_date=Q1_END)
    assert len(outbox._claim(10)) == 2  # a sender claims both, then is killed
    assert outbox.outbox_send_due() == {}  # held: nobody else sends them meanwhile

    OutboxMessage.objects.update(claimed_until=F("created_at") - timedelta(seconds=1))
    assert outbox.outbox_send_due() == {"sent": 2}
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_only_superusers_see_the_outbox(client, user_with_role):
    client.force_login(user_with_role("support"))
    assert client.get("/admin/outbox/outboxmessage/").status_code == 403


@pytest.mark.django_db
def test_a_refused_message_waits_1_5_30_minutes_then_2_hours_then_is_given_up(
    settings, killed_before_handover
):
    """README "Emails": the waits between attempts, and the attempt that gives up."""
    from django.utils import timezone

    settings.EMAIL_BACKEND = "tests.outbox.test_outbox.RefusingBackend"
    (sub,) = book(1)
    sub.customer.billing_email = RefusingBackend.refused
    sub.customer.save()
    nightly_run(run_date=Q1_END)

    waits = []
    for _ in range(outbox.MAX_ATTEMPTS):
        OutboxMessage.objects.update(next_attempt_at=None)
        sent_at = timezone.now()
        outbox.outbox_send_due()
        message = OutboxMessage.objects.get()
        if message.next_attempt_at is not None and message.status == "pending":
            waits.append(round((message.next_attempt_at - sent_at).total_seconds() / 60))
    assert waits == [1, 5, 30, 120]
    assert (message.status, message.attempts) == ("failed", outbox.MAX_ATTEMPTS)
