"""Logs (README "Deploying"): one JSON line per request in production with its request
id, user, role, path, status and duration; every money move logged with its entity,
amount and actor once it commits; the nightly run's steps with counts and duration;
readable lines in development."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from django.db import transaction
from django.utils import timezone

from approvals.services import approval_process_refund
from portal.logs import formatter
from subscriptions.services.nightly import STEPS, nightly_run
from tests.admin_buttons import refund_request
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def capture(*, json_lines: bool):
    """A handler on the root logger with production's (or development's) formatter."""
    options = {k: v for k, v in formatter(json=json_lines).items() if k != "()"}
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(**options))
    return handler


@pytest.fixture
def json_log():
    handler = capture(json_lines=True)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    lines: list[dict] = []

    def read() -> list[dict]:
        lines[:] = [json.loads(line) for line in handler.stream.getvalue().splitlines()]
        return lines

    yield read
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_request_writes_one_json_line_with_who_what_and_how_long(
    client, user_with_role, json_log
):
    user = user_with_role("finance", "support", username="fin")
    client.force_login(user)

    response = client.get("/admin/", HTTP_X_REQUEST_ID="ignored-from-outside")

    finished = [line for line in json_log() if line["event"] == "request_finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["user"] == "fin"
    assert line["role"] == "finance,support"
    assert line["path"] == "/admin/"
    assert line["method"] == "GET"
    assert line["status"] == response.status_code == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert len(line["request_id"]) == 36  # a fresh UUID, not the client's header
    assert line["level"] == "info" and line["timestamp"].endswith("Z")
    assert not [line for line in json_log() if line["event"] == "request_started"]


def test_a_superuser_is_logged_as_such(admin_client, json_log):
    admin_client.get("/admin/")
    (line,) = [line for line in json_log() if line["event"] == "request_finished"]
    assert line["user"] == "admin" and line["role"] == "superuser"


def test_an_anonymous_request_is_logged_without_a_user(client, json_log):
    client.get("/healthz")
    (line,) = [line for line in json_log() if line["event"] == "request_finished"]
    assert line["user"] is None and line["role"] is None and line["status"] == 200


def test_a_refund_logs_its_entity_amount_and_actor(
    portal, json_log, django_capture_on_commit_callbacks
):
    refund = refund_request(portal)
    desk = portal.users["deal_desk"]

    with django_capture_on_commit_callbacks(execute=True):
        approval_process_refund(request=refund, actor=desk)

    (moved,) = [line for line in json_log() if line.get("money") == "refund processed"]
    assert moved["entity"] == f"approval_request:{refund.pk}"
    assert moved["amount"] == "-300.00"
    assert moved["currency"] == refund.subscription.currency
    assert moved["actor"] == desk.username
    assert moved["subscription"] == refund.subscription_id
    assert moved["logger"] == "approvals.services.execution"


def test_a_money_move_rolled_back_logs_nothing(
    portal, json_log, django_capture_on_commit_callbacks
):
    refund = refund_request(portal)

    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                approval_process_refund(request=refund, actor=portal.users["deal_desk"])
                raise RuntimeError("the database went away")
        except RuntimeError:
            pass

    assert not [line for line in json_log() if "money" in line]


def test_the_nightly_run_logs_each_step_with_counts_and_duration(json_log):
    SubscriptionFactory()

    result = nightly_run(run_date=timezone.localdate())

    steps = [line for line in json_log() if line["logger"] == "subscriptions.services.nightly"]
    by_step = {line["step"]: line for line in steps if "step" in line}
    assert list(by_step) == list(STEPS)
    for step, line in by_step.items():
        assert line["counts"] == result.counts[step]
        assert line["seconds"] >= 0 and line["errors"] == 0
        assert line["job_run"] == result.job_run_id
    (end,) = [line for line in steps if "status" in line]
    assert end["status"] == "succeeded"
    assert end["seconds"] == pytest.approx(
        sum(line["seconds"] for line in by_step.values()), abs=0.01
    )


def test_development_logs_stay_readable(client):
    handler = capture(json_lines=False)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        client.get("/healthz")
    finally:
        root.removeHandler(handler)
    text = handler.stream.getvalue()
    assert "request_finished" in text and "path=/healthz" in text and "status=200" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
