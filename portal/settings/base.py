"""Settings shared by every environment. Environment variables override the defaults.

`dev`, `test` and `production` import from here and decide where PostgreSQL and the
Celery broker come from.
"""

import logging
import os
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from portal.logs import configure_structlog, logging_settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_from_env() -> dj_database_url.DBConfig | None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    config = dj_database_url.parse(url, conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("DATABASE_URL must point at PostgreSQL (postgres://...)")
    return config


SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "guardian",
    "simple_history",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_structlog",
    "outbox",
    "subscriptions",
    "approvals",
]

MIDDLEWARE = [
    # Counts and times every request for /metrics (portal/metrics.py).
    "portal.metrics.RequestMetricsMiddleware",
    # One log line per request, redirects to HTTPS included: request id, user, role,
    # path, status, duration (the user is read when the response is ready).
    "portal.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Two-factor login (portal/two_factor.py): which device verified the session, and
    # the roles that move money sent to enrol or verify before any page.
    "django_otp.middleware.OTPMiddleware",
    "portal.two_factor.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records the logged-in user on every history row written during a request.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user; every page needs a login

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "admin:login"

# Two-factor login (README "Deploying"): with PORTAL_OTP_REQUIRED, the roles that move
# money (portal/two_factor.py: MONEY_ROLES) and superusers must enrol an authenticator
# app and enter a code after their password; everyone who enrolled must. With
# PORTAL_OTP_ENROLLED_MUST_VERIFY alone, only those who enrolled must (the demo).
PORTAL_OTP_REQUIRED = env_bool("PORTAL_OTP_REQUIRED", False)
PORTAL_OTP_ENROLLED_MUST_VERIFY = env_bool("PORTAL_OTP_ENROLLED_MUST_VERIFY", False)
# Wrong codes: this many for one user within the cool-off locks their code entry for
# the cool-off, counted again from each further try (as django-axes does passwords).
PORTAL_OTP_FAILURE_LIMIT = int(os.environ.get("PORTAL_OTP_FAILURE_LIMIT", "5"))
PORTAL_OTP_COOLOFF = timedelta(minutes=int(os.environ.get("PORTAL_OTP_COOLOFF_MINUTES", "15")))
PORTAL_OTP_RECOVERY_CODES = 10
# Wrong codes are counted by the portal (above), not by django-otp's own back-off.
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
# The device admins (superusers only) never show a secret or a recovery code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Billing operations portal")

# Failed logins (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is locked out for AXES_COOLOFF_MINUTES, counted again from
# each further try; a successful login clears the count. Attempts are kept in the
# database, so every web process sees them, and superusers can unlock a pair early by
# deleting its access attempt in the admin (or `manage.py axes_reset_username NAME`).
# The address is REMOTE_ADDR: behind a proxy the server must set it to the client's
# address, otherwise everyone shares the proxy's and the lockout is per username.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.lockout.lockout_response"

# Sessions last a working day from login and end when the browser closes. Not saved on
# every request: that would make the eight hours an idle timeout, so a session kept
# busy would never end, and cost a write per page.
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(8 * 60 * 60)))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# No script reads the CSRF token from the cookie: the admin's forms carry it.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# History is a record: old versions can be looked at in the admin, never restored or
# edited (the portal admins refuse it too, see portal/admin_base.py).
SIMPLE_HISTORY_REVERT_DISABLED = True
SIMPLE_HISTORY_EDIT = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "var" / "static"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Email: the backend and server come from the environment; customers' notices go out
# from DEFAULT_FROM_EMAIL.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing-ops@localhost")
# Where links in staff emails point.
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000")

# Celery. The broker URL is set by each environment's settings module.
# A task is acknowledged when it is done, not when a worker takes it, and one whose
# worker died goes back on the queue: every task is safe to run twice. A worker takes
# one task at a time, so a long one never holds others back on a busy worker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Every task has a time limit (seconds): this default, or its own (the nightly run's
# one night, a batch of it, the outbox sweep).
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
NIGHTLY_TASK_TIME_LIMIT = int(os.environ.get("NIGHTLY_TASK_TIME_LIMIT", "1800"))
NIGHTLY_BATCH_TIME_LIMIT = int(os.environ.get("NIGHTLY_BATCH_TIME_LIMIT", "300"))
# Redis hands an unacknowledged task to another worker after this long: above the
# longest time limit, so a task still running is never run twice at once. A lost worker
# does not wait for it: the watchdog below starts its night again within a minute.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(
        os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(NIGHTLY_TASK_TIME_LIMIT + 300))
    )
}
# How often beat's watchdog looks for nightly runs whose process stopped.
NIGHTLY_WATCHDOG_SECONDS = int(os.environ.get("NIGHTLY_WATCHDOG_SECONDS", "60"))
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Local time of day at which beat starts the nightly run ("HH:MM").
NIGHTLY_RUN_AT = time.fromisoformat(os.environ.get("NIGHTLY_RUN_AT", "02:00"))
# NIGHTLY_RUN_EVERY_SECONDS replaces the daily time with an interval (demos, tests).
NIGHTLY_RUN_EVERY_SECONDS = int(os.environ.get("NIGHTLY_RUN_EVERY_SECONDS", "0"))
# Who writes the text of an email recorded by reference (outbox/services.py).
OUTBOX_RENDERERS = {
    "reconciliation_notice": "subscriptions.services.notices.reconciliation_notice_texts",
}
# The outbox sweep sends emails whose send request never reached a worker.
OUTBOX_SWEEP_SECONDS = int(os.environ.get("OUTBOX_SWEEP_SECONDS", "120"))
CELERY_BEAT_SCHEDULE = {
    "nightly-run": {
        "task": "subscriptions.tasks.nightly_run_task",
        "schedule": NIGHTLY_RUN_EVERY_SECONDS
        or crontab(hour=NIGHTLY_RUN_AT.hour, minute=NIGHTLY_RUN_AT.minute),
    },
    "outbox-sweep": {"task": "outbox.tasks.outbox_send", "schedule": OUTBOX_SWEEP_SECONDS},
    "nightly-watchdog": {
        "task": "subscriptions.tasks.nightly_watchdog_task",
        "schedule": NIGHTLY_WATCHDOG_SECONDS,
    },
}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")

# Approval policy (DOMAIN.md "Max seats reset"): waiving more than this many seats needs
# an executive as well; a waived amount at or above the currency's threshold needs finance.
APPROVAL_SEAT_THRESHOLD = 10
APPROVAL_FINANCE_THRESHOLD = {
    "USD": Decimal("10000.00"),
    "EUR": Decimal("10000.00"),
    "GBP": Decimal("8000.00"),
    "CAD": Decimal("13000.00"),
    "AUD": Decimal("15000.00"),
    "CHF": Decimal("9000.00"),
    "JPY": Decimal("1500000"),
}

# Usage import (subscriptions/services/usage/): a line counting more billable users (or
# max historical users) than this is a bad line and the file is rejected. At most
# subscriptions.billing.MAX_SEATS, which the system check holds it to: larger counts,
# priced, could overflow the ledger's money columns.
USAGE_MAX_BILLABLE_USERS = int(os.environ.get("USAGE_MAX_BILLABLE_USERS", "1000000"))

# /metrics (portal/metrics.py) answers only with a token or from allowed addresses
# (comma-separated addresses or networks); with neither, it answers 404.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS")

# Readable lines on the console; production's are JSON (portal/logs.py).
configure_structlog()
LOGGING = logging_settings(json=False, level=os.environ.get("LOG_LEVEL", "INFO"))
# One line a request, when it finishes (with its status and duration), not two.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
