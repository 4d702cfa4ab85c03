"""Production settings come from the environment and pass Django's deploy checks."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.production",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789abcdef",
    "ALLOWED_HOSTS": "portal.example.com",
    "DATABASE_URL": "postgres://portal@db.example.com:5432/portal",
    "CELERY_BROKER_URL": "redis://broker.example.com:6379/0",
}


def run_manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_https_only_and_logins_are_throttled():
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS,"
        " s.SESSION_COOKIE_AGE, s.SESSION_EXPIRE_AT_BROWSER_CLOSE, s.AXES_ENABLED,"
        " s.AUTHENTICATION_BACKENDS[0], s.MIDDLEWARE[-1])"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [
        *["True", "True", "True", "31536000", "28800", "True", "True"],
        *["axes.backends.AxesStandaloneBackend", "axes.middleware.AxesMiddleware"],
    ]


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_production_never_falls_back_to_an_embedded_database():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DATABASE_URL"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "DATABASE_URL must be set in production" in result.stderr


@pytest.mark.django_db
def test_a_post_without_csrf_token_is_refused(user_with_role):
    user_with_role("support", username="csrf-check")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "csrf-check", "password": "pw"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_pages_need_a_login(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert client.get("/admin/subscriptions/subscription/").status_code == 302


def test_every_task_has_a_time_limit_below_the_brokers_visibility_timeout():
    """README "Workers": a task still running is never handed to a second worker."""
    from django.conf import settings

    from portal.celery import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert {"subscriptions.tasks.nightly_run_task", "outbox.tasks.outbox_send"} <= set(ours)
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    for name, task in ours.items():
        limit = task.time_limit or app.conf.task_time_limit
        assert limit, f"{name} has no time limit"
        assert limit < visibility, f"{name}: {limit} s is not below {visibility} s"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize("module", ["portal.settings.dev", "portal.settings.test"])
def test_importing_dev_or_test_settings_starts_no_server(module, tmp_path):
    """The settings read where the servers are; only commands start them."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
    env = {**clean, "PORTAL_VAR_DIR": str(tmp_path / "var")}
    code = f"import importlib; importlib.import_module({module!r}); print('imported')"

    without = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert without.returncode != 0
    assert "the embedded PostgreSQL is not running" in without.stderr

    named = {**env, "DATABASE_URL": "postgres://portal@db.example.com:5432/portal"}
    with_url = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=named,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert with_url.stdout.strip() == "imported", with_url.stderr
    assert not (tmp_path / "var").exists()  # no PostgreSQL, no Redis started


def test_beat_sweeps_the_outbox_and_watches_the_nightly_run():
    """README "Emails" and "Job runs": the sweep every two minutes, the watchdog every one."""
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["outbox-sweep"] == {"task": "outbox.tasks.outbox_send", "schedule": 120}
    assert schedule["nightly-watchdog"] == {
        "task": "subscriptions.tasks.nightly_watchdog_task",
        "schedule": 60,
    }
