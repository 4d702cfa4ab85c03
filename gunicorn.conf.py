"""gunicorn's settings for `make serve` and the Procfile's web process (README
"Deploying"). Environment: PORT, WEB_CONCURRENCY, GUNICORN_TIMEOUT, FORWARDED_ALLOW_IPS."""

import os

from portal.logs import logging_settings

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# The TLS proxy in front: whose X-Forwarded-* headers to believe.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The portal logs each request itself, as JSON (portal/request_log.py).
accesslog = None
# gunicorn's own lines (start, stop, worker timeouts) as JSON too.
logconfig_dict = logging_settings(json=True, level=os.environ.get("LOG_LEVEL", "INFO"))
wsgi_app = "portal.wsgi:application"


def child_exit(server, worker):
    """Forget a dead worker's request metrics (PROMETHEUS_MULTIPROC_DIR, portal/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
