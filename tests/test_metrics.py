"""/metrics (README "Deploying"): closed unless a token or an address list is configured;
the web process's request figures; the nightly run, the approval queues and the outbox
read from the database at each scrape, in a fixed number of queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from approvals.models import ApprovalRequest
from outbox.models import OutboxMessage
from portal.policy import SLOTS
from subscriptions.models import JobRun, Reconciliation
from subscriptions.services.nightly import STEPS, nightly_run
from tests.admin_buttons import reset_request
from tests.factories import ApprovalDecisionFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"
SMALL = "sales_ops_or_support_manager"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


# --- Closed by default --------------------------------------------------------------------


def test_metrics_are_not_served_without_a_token_or_address_list(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_the_token_is_required(client, token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 401
    good = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert good.status_code == 200
    assert good["Content-Type"].startswith("text/plain")


def test_an_address_list_lets_only_its_addresses_in(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16", "192.0.2.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    settings.METRICS_TOKEN = TOKEN  # both configured: both needed
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401


def test_metrics_stay_closed_in_production_unless_configured():
    from tests.test_settings import PRODUCTION_ENV, run_manage

    code = (
        "from django.conf import settings as s; print(repr(s.METRICS_TOKEN), s.METRICS_ALLOWED_IPS)"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "[]"]


# --- What a scrape shows ----------------------------------------------------------------


def test_requests_are_counted_by_method_and_status(client, token):
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/admin/")  # 302 to the login

    after = scrape(client)
    key = ("portal_http_requests_total", (("method", "GET"), ("status", "200")))
    # Two health checks and the first scrape.
    assert after[key] - before.get(key, 0) == 3
    redirect = ("portal_http_requests_total", (("method", "GET"), ("status", "302")))
    assert after[redirect] - before.get(redirect, 0) == 1
    assert (
        value(after, "portal_http_request_duration_seconds_count", method="GET", status="200") >= 3
    )


def test_after_a_nightly_run_the_metrics_show_its_figures(client, token):
    before = scrape(client)
    assert value(before, "portal_nightly_last_success_timestamp_seconds") == 0
    SubscriptionFactory()
    SubscriptionFactory()

    result = nightly_run(run_date=timezone.localdate())

    job = JobRun.objects.get(pk=result.job_run_id)
    assert job.status == JobRun.Status.SUCCEEDED
    samples = scrape(client)
    assert value(samples, "portal_nightly_last_success_timestamp_seconds") == pytest.approx(
        job.finished_at.timestamp()
    )
    assert value(samples, "portal_nightly_last_run_duration_seconds") == pytest.approx(
        (job.finished_at - job.started_at).total_seconds()
    )
    assert set(job.step_seconds) == set(STEPS)
    for step in STEPS:
        seconds = value(samples, "portal_nightly_step_duration_seconds", step=step)
        assert seconds == pytest.approx(job.step_seconds[step]) and seconds >= 0
        for outcome, count in job.counts[step].items():
            assert value(samples, "portal_nightly_step_rows", step=step, outcome=outcome) == count
    created = value(
        samples, "portal_nightly_step_rows", step="reconciliation_create", outcome="created"
    )
    assert created == Reconciliation.objects.count() > 0
    assert value(samples, "portal_nightly_last_run_errors") == 0
    assert value(samples, "portal_nightly_runs_total", status="succeeded") == 1
    assert value(samples, "portal_nightly_runs_total", status="failed") == 0


def test_a_failed_run_is_counted(client, token):
    JobRun.objects.create(
        run_date=timezone.localdate(),
        status=JobRun.Status.FAILED,
        finished_at=timezone.now(),
        errors=[{"step": "renewal", "subscription": 1, "error": "boom"}],
    )
    samples = scrape(client)
    assert value(samples, "portal_nightly_runs_total", status="failed") == 1
    assert value(samples, "portal_nightly_last_run_errors") == 1
    assert value(samples, "portal_nightly_last_success_timestamp_seconds") == 0


def make_queues(portal):
    """Pending: two small resets, one large one with sales ops done (executive left);
    approved and waiting for support: one; an email pending, one failed, one sent."""
    reset_request(portal)
    reset_request(portal)
    large = reset_request(
        portal, required_slots=["sales_ops", "executive"], amount_at_stake=Decimal("900.00")
    )
    ApprovalDecisionFactory(request=large, slot="sales_ops", approver=portal.users["sales_ops"])
    reset_request(portal, status=ApprovalRequest.Status.APPROVED)
    now = timezone.now()
    for n, status in enumerate(["pending", "failed", "sent"]):
        OutboxMessage.objects.create(
            key=f"test:{n}:{now.timestamp()}",
            kind="approval",
            to=["a@example.com"],
            subject="s",
            status=status,
            sent_at=now if status == "sent" else None,
        )


def test_queue_depths(client, token, portal):
    make_queues(portal)

    samples = scrape(client)

    pending = {slot: value(samples, "portal_approvals_pending", slot=slot) for slot in SLOTS}
    assert pending == {SMALL: 2, "sales_ops": 0, "executive": 1, "finance": 0}
    assert (
        value(
            samples,
            "portal_approvals_approved_unexecuted",
            kind=ApprovalRequest.Kind.MAX_SEATS_RESET,
        )
        == 1
    )
    assert value(samples, "portal_outbox_unsent", status="pending") == 1
    assert value(samples, "portal_outbox_unsent", status="failed") == 1
    assert value(samples, "portal_outbox_oldest_pending_age_seconds") >= 0


def test_a_scrape_costs_the_same_queries_however_many_records(client, token, portal):
    scrape(client)
    with CaptureQueriesContext(connection) as empty:
        scrape(client)
    make_queues(portal)
    make_queues(portal)
    nightly_run(run_date=timezone.localdate())
    with CaptureQueriesContext(connection) as full:
        scrape(client)
    assert len(full) == len(empty) == 6  # README: six queries a scrape
