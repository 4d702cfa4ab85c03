"""The portal served as in production (README "Deploying"): production settings against
the test database and broker, static files collected with hashed names, gunicorn on a
free port behind an (imagined) TLS proxy that sets X-Forwarded-Proto."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.assertions import database_url
from tests.test_settings import PRODUCTION_ENV

pytestmark = pytest.mark.django_db
HTTPS = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front sets
TOKEN = "scrape-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port: int, path: str, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": "127.0.0.1", **(headers or {})})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


@pytest.fixture
def production_env(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    return {
        **clean,
        **PRODUCTION_ENV,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "STATIC_ROOT": str(tmp_path / "static"),
        "WEB_CONCURRENCY": "2",
        "METRICS_TOKEN": TOKEN,
    }


@pytest.fixture
def server(production_env, tmp_path):
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=settings.BASE_DIR, env=production_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert collect.returncode == 0, collect.stdout + collect.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()

    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=settings.BASE_DIR,
            env={
                **production_env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            response, _ = fetch(port, "/healthz")
            if response.status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gunicorn did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.25)
    yield port, log_path
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_gunicorn_serves_the_portal_on_production_settings(server):
    port, log_path = server

    health, body = fetch(port, "/healthz")  # the load balancer's check, over plain HTTP
    assert (health.status, body) == (200, b"ok")

    plain, _ = fetch(port, "/admin/login/")  # a browser is sent to HTTPS
    assert plain.status == 301
    assert plain.getheader("Location") == "https://127.0.0.1/admin/login/"

    login, page = fetch(port, "/admin/login/", HTTPS)
    text = page.decode()
    assert login.status == 200
    assert 'name="password"' in text and "Billing operations portal" in text
    assert "max-age=31536000" in login.getheader("Strict-Transport-Security")
    assert "; Secure" in login.getheader("Set-Cookie") and "HttpOnly" in login.getheader(
        "Set-Cookie"
    )

    stylesheet = re.search(r'href="(/static/admin/css/base\.([0-9a-f]{12})\.css)"', text)
    assert stylesheet, "the admin stylesheet is linked by its hashed name"
    css, content = fetch(port, stylesheet.group(1), {**HTTPS, "Accept-Encoding": "gzip"})
    assert css.status == 200
    assert css.getheader("Content-Type").startswith("text/css")
    assert css.getheader("Content-Encoding") == "gzip"  # compressed copy
    assert b"font-family" in gzip.decompress(content)
    max_age = int(re.search(r"max-age=(\d+)", css.getheader("Cache-Control")).group(1))
    assert max_age >= 365 * 24 * 60 * 60
    assert "immutable" in css.getheader("Cache-Control")
    unhashed, _ = fetch(port, "/static/admin/css/base.css", HTTPS)
    assert "immutable" not in (unhashed.getheader("Cache-Control") or "")

    refused, _ = fetch(port, "/metrics")
    assert refused.status == 401

    # Every line of the output is JSON, gunicorn's own included; each request one line.
    time.sleep(0.5)
    lines = []
    for raw in log_path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pytest.fail(f"not a JSON line: {raw}")
    assert any(line["logger"].startswith("gunicorn") for line in lines)
    finished = [line for line in lines if line.get("event") == "request_finished"]
    login_lines = [line for line in finished if line["path"] == "/admin/login/"]
    # Plain HTTP sent to HTTPS, then the page: both logged, whichever worker answered.
    assert sorted(line["status"] for line in login_lines) == [200, 301]
    for line in login_lines:
        assert line["request_id"] and line["duration_ms"] >= 0
        assert line["user"] is None and line["method"] == "GET"


def served_ok(port) -> float:
    response, body = fetch(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "portal_http_requests_total" and sample.labels == {
                "method": "GET",
                "status": "200",
            }:
                return sample.value
    return 0.0


def test_metrics_add_up_every_gunicorn_worker(server):
    port, _ = server
    before = served_ok(port)
    for _ in range(8):
        assert fetch(port, "/healthz")[0].status == 200

    # Eight health checks and the first scrape, whichever of the two workers answered.
    assert served_ok(port) - before == 9


# --- Error reporting ----------------------------------------------------------------------


def test_sentry_starts_only_with_a_dsn(monkeypatch):
    from portal import error_reporting

    calls = []
    monkeypatch.setattr(error_reporting.sentry_sdk, "init", lambda **kw: calls.append(kw))

    assert error_reporting.configure("", environment="production") is False
    assert calls == []

    dsn = "https://public@errors.example.invalid/1"
    assert error_reporting.configure(dsn, environment="production") is True
    (call,) = calls
    assert call["dsn"] == dsn and call["send_default_pii"] is False


@pytest.mark.parametrize("dsn", ["", "https://public@errors.example.invalid/1"])
def test_production_settings_report_errors_only_when_sentry_dsn_is_set(dsn):
    from tests.test_settings import run_manage

    code = "import sentry_sdk; print(sentry_sdk.get_client().is_active())"
    env = {**PRODUCTION_ENV, **({"SENTRY_DSN": dsn} if dsn else {})}
    result = run_manage("shell", "--no-imports", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == str(bool(dsn))
