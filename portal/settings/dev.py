"""Local development and the demo: the embedded PostgreSQL / Redis unless the environment
names real servers. Importing this starts nothing: the commands start the servers."""

import os

from portal import embedded

from .base import *  # noqa: F403
from .base import BASE_DIR, database_from_env, env_bool

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-only-not-secret-" + "x" * 40

DATABASES = {"default": database_from_env() or embedded.database_settings()}
# Where the servers are; nothing is started here (see portal/embedded.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded.redis_url()

# Emails land as files in var/mail so the demo never talks to an SMTP server.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = BASE_DIR / "var" / "mail"

# Links in staff emails point at the portal this command serves: `make run` listens on
# PORTAL_HOST:PORTAL_PORT (portal/demo.py), and its worker sends the emails.
_host = os.environ.get("PORTAL_HOST", "127.0.0.1")
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL") or (
    f"http://{'127.0.0.1' if _host in ('0.0.0.0', '::', '') else _host}:"
    f"{os.environ.get('PORTAL_PORT', '8000')}"
)

# DEBUG shows Django's technical 404 page whatever the templates say; a record that is
# not there (or not the user's) gets the portal's own page, as in production.
MIDDLEWARE = [*MIDDLEWARE, "portal.middleware.BrandedNotFoundMiddleware"]  # noqa: F405

# The demo asks for a code only from those who enrolled an authenticator app (the demo's
# sales_ops login; see README "Deploying"); PORTAL_OTP_REQUIRED=1 asks every money role.
PORTAL_OTP_ENROLLED_MUST_VERIFY = env_bool("PORTAL_OTP_ENROLLED_MUST_VERIFY", True)
