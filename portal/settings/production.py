"""Production: everything from the environment, nothing embedded, secure defaults.

Required: SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL, ALLOWED_HOSTS. The rest is in
README "Deploying".
"""

import os

from django.core.exceptions import ImproperlyConfigured

from portal import error_reporting
from portal.logs import logging_settings

from .base import *  # noqa: F403
from .base import database_from_env, env_bool


def required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set in production")
    return value


DEBUG = False
SECRET_KEY = required("SECRET_KEY")
required("ALLOWED_HOSTS")
required("DATABASE_URL")
DATABASES = {"default": database_from_env()}
CELERY_BROKER_URL = required("CELERY_BROKER_URL")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Behind the TLS proxy every page is HTTPS (SECURE_PROXY_SSL_HEADER: the proxy must set
# X-Forwarded-Proto, and strip it from what clients send). The load balancer's health
# check and the metrics scraper may call these two over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

# Static files: collected into STATIC_ROOT (`manage.py collectstatic`) with hashed,
# compressed copies; WhiteNoise serves them from the web process with a cache lifetime
# of ten years, since a changed file gets a new name.
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Two-factor login for the roles that move money, and superusers (portal/two_factor.py).
PORTAL_OTP_REQUIRED = True

# One JSON object a line (portal/logs.py), from the workers too: Celery leaves the
# logging setup to Django.
LOGGING = logging_settings(json=True, level=os.environ.get("LOG_LEVEL", "INFO"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Errors to Sentry, only when SENTRY_DSN is set.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
error_reporting.configure(
    SENTRY_DSN,
    environment=os.environ.get("SENTRY_ENVIRONMENT", "production"),
    traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
)
