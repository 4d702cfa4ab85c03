"""End to end under faults: the whole worker (main process and children) killed in the
middle of a night, a new worker started. The night completes with the exact ledger,
within the time the README promises, over Redis and, where it answers, RabbitMQ."""

import os
import signal
import socket
import time
import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings

from outbox.models import OutboxMessage
from portal.celery import app as celery_app
from subscriptions.models import Customer, JobRun, Namespace, Reconciliation, Subscription
from subscriptions.tasks import nightly_run_task
from tests.processes import start, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Q1_END = date(2026, 4, 1)
BOOK = 8000
# README "Workers": a night whose worker is lost is started again by the watchdog
# (NIGHTLY_WATCHDOG_SECONDS, 60 by default, 2 here) and redone; this bounds the whole of
# it on these machines.
RECOVERED_WITHIN = 120
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def rabbitmq_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


def brokers():
    yield pytest.param(None, id="redis")
    yield pytest.param(
        RABBITMQ,
        id="rabbitmq",
        marks=pytest.mark.skipif(not rabbitmq_answers(), reason="no RabbitMQ on 5672"),
    )


def seed(count: int) -> None:
    customers = Customer.objects.bulk_create(
        Customer(name=f"Kill {n}", billing_email=f"k{n}@example.com", currency="USD")
        for n in range(count)
    )
    namespaces = Namespace.objects.bulk_create(
        Namespace(customer=c, kind="saas", name=f"kill-{n}", seats_in_use=110, max_seats_used=110)
        for n, c in enumerate(customers)
    )
    Subscription.objects.bulk_create(
        Subscription(
            customer=c, namespace=ns, seats=100, annual_unit_price=Decimal("100.00"),
            currency="USD", term_start=date(2026, 1, 1), term_end=date(2027, 1, 1),
        )
        for c, ns in zip(customers, namespaces, strict=True)
    )  # fmt: skip


@pytest.fixture
def not_eager():
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


@pytest.mark.parametrize("broker", list(brokers()))
def test_a_night_survives_its_whole_worker_being_killed(broker, tmp_path, not_eager):
    seed(BOOK)
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    worker_args = [
        "worker", "--pool", "prefork", "--concurrency", "2", "--loglevel", "INFO",
        "--queues", queue, "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    first = start([*worker_args, "--hostname", f"{queue}-a@%h"], queue, tmp_path, broker=broker)
    others = []
    try:
        with celery_app.connection_for_write(broker or settings.CELERY_BROKER_URL) as conn:
            nightly_run_task.apply_async(args=[Q1_END.isoformat()], queue=queue, connection=conn)
        running = JobRun.objects.filter(run_date=Q1_END, step="reconciliation_notify")
        wait_for(
            lambda: running.filter(status="running", progress_done__gt=0).exists(),
            seconds=90,
            what="the night to be in the middle of its notify step",
            logs=tmp_path,
            every=0.02,
        )
        os.killpg(first.pid, signal.SIGKILL)  # main process and children at once
        first.wait(timeout=10)
        killed_at = time.monotonic()
        assert not JobRun.objects.filter(run_date=Q1_END, status="succeeded").exists()

        others.append(
            start([*worker_args, "--hostname", f"{queue}-b@%h"], queue, tmp_path, broker=broker)
        )
        others.append(
            start(
                ["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")],
                queue,
                tmp_path,
                broker=broker,
                NIGHTLY_WATCHDOG_SECONDS="2",
            )
        )
        wait_for(
            lambda: JobRun.objects.filter(run_date=Q1_END, status="succeeded").exists(),
            seconds=RECOVERED_WITHIN,
            what="the night to complete on the new worker",
            logs=tmp_path,
        )
        recovered_in = time.monotonic() - killed_at
    finally:
        stop(*others)
        if first.poll() is None:
            first.kill()

    assert recovered_in < RECOVERED_WITHIN
    statuses = list(JobRun.objects.filter(run_date=Q1_END).values_list("status", flat=True))
    assert "abandoned" in statuses and statuses.count("succeeded") >= 1, statuses
    # The exact ledger: each subscription's Q1 once, priced once, one notice each.
    assert Reconciliation.objects.count() == BOOK
    assert set(Reconciliation.objects.values_list("status", "amount")) == {
        ("pending", Decimal("750.00"))
    }
    notices = OutboxMessage.objects.filter(kind="reconciliation_notice")
    assert notices.count() == notices.values("to").distinct().count() == BOOK
