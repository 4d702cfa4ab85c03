"""One log line per request (django-structlog's middleware): `request_finished` with the
request id, user, role, method, path, status and duration in milliseconds."""

from __future__ import annotations

import time
from typing import Any

from django_structlog import signals
from django_structlog.middlewares import RequestMiddleware

from portal.policy import roles_of


def request_started(request, **kwargs) -> None:
    """django-structlog's `bind_extra_request_metadata`: when the request began."""
    request.log_started = time.monotonic()


def request_finished_fields(request, response, log_kwargs: dict[str, Any], **kwargs) -> None:
    """django-structlog's `bind_extra_request_finished_metadata`: the fields of the line
    a request ends with."""
    user: Any = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)
    # A superuser's pages never ask for their groups (policy: they may do everything),
    # so neither does their log line; everyone else's pages have asked already.
    if authenticated and user.is_superuser:
        roles = ["superuser"]
    else:
        roles = sorted(roles_of(user)) if authenticated else []
    started = getattr(request, "log_started", None)
    log_kwargs.update(
        user=user.get_username() if authenticated else None,
        role=",".join(roles) or None,
        method=request.method,
        path=request.path,
        status=response.status_code,
        duration_ms=round((time.monotonic() - started) * 1000, 1) if started else None,
    )


def _connect() -> None:
    signals.bind_extra_request_metadata.connect(request_started, dispatch_uid="portal-logs")
    signals.bind_extra_request_finished_metadata.connect(
        request_finished_fields, dispatch_uid="portal-logs"
    )


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's request middleware, with the portal's fields on its lines."""

    def __init__(self, get_response) -> None:
        _connect()
        super().__init__(get_response)
