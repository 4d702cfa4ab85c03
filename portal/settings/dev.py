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

# The demo asks for a code only from those who enrolled an authenticator app (the demo's
# sales_ops login; see README "Deploying"); PORTAL_OTP_REQUIRED=1 asks every money role.
PORTAL_OTP_ENROLLED_MUST_VERIFY = env_bool("PORTAL_OTP_ENROLLED_MUST_VERIFY", True)
