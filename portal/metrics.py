"""Prometheus metrics at `/metrics` (README "Deploying").

Two kinds of figures:

- the web process's own: requests by method and status, and how long they took
  (`RequestMetricsMiddleware`). Under gunicorn with several workers, set
  `PROMETHEUS_MULTIPROC_DIR` to an empty folder the workers share; a scrape then adds
  up every worker's figures.
- the portal's state, read from the database at scrape time, so that every process
  tells the same truth: the nightly run, the approval queues, the outbox. Each app owns
  its collector (`<app>/metrics.py`) and registers it from its `AppConfig.ready()` with
  `register_collector`: the portal imports no app. A collector costs a fixed number of
  queries, however many records there are.

The endpoint is closed unless configured: with neither `METRICS_TOKEN` nor
`METRICS_ALLOWED_IPS` it answers 404. With a token, a scrape must send
`Authorization: Bearer <token>`; with an allow-list, come from one of its addresses or
networks; with both, both.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Iterable
from typing import Protocol

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "portal_http_requests",
    "HTTP requests answered, by method and status.",
    ["method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and status.",
    ["method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

_collectors: dict[str, Collector] = {}


def register_collector(name: str, collector: Collector) -> None:
    """Add an app's collector to every scrape; registering a name again replaces it."""
    old = _collectors.pop(name, None)
    if old is not None:
        REGISTRY.unregister(old)
    _collectors[name] = collector
    REGISTRY.register(collector)


def scrape() -> bytes:
    """The text of a scrape: this process's figures, or every worker's with
    PROMETHEUS_MULTIPROC_DIR, and the apps' figures from the database."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in _collectors.values():
        registry.register(collector)
    return generate_latest(registry)


class RequestMetricsMiddleware:
    """Counts and times every request (first in MIDDLEWARE, so it sees them all)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        labels = {"method": request.method or "", "status": str(response.status_code)}
        REQUESTS.labels(**labels).inc()
        LATENCY.labels(**labels).observe(time.perf_counter() - started)
        return response


def _address_allowed(address: str, allowed: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in allowed)


def _token_sent(request: HttpRequest, token: str) -> bool:
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip(), token)


def metrics_view(request: HttpRequest) -> HttpResponse:
    token: str = settings.METRICS_TOKEN
    allowed: list[str] = settings.METRICS_ALLOWED_IPS
    if not token and not allowed:
        raise Http404("Metrics are not enabled.")
    if allowed and not _address_allowed(request.META.get("REMOTE_ADDR", ""), allowed):
        return HttpResponse("Not an allowed address.\n", status=403, content_type="text/plain")
    if token and not _token_sent(request, token):
        response = HttpResponse("A bearer token is needed.\n", status=401)
        response["Content-Type"] = "text/plain"
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
