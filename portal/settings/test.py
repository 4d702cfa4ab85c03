"""The test suite: same servers as dev, tasks run eagerly unless a test starts a worker."""

import os

from portal import embedded

from .base import *  # noqa: F403
from .base import database_from_env

DEBUG = False
SECRET_KEY = "test-only-not-secret-" + "x" * 40

DATABASES = {"default": database_from_env() or embedded.database_settings()}
# Where the servers are; nothing is started here (see portal/embedded.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded.redis_url()
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
