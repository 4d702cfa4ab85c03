"""The portal's own "not found" page while DEBUG is on.

With DEBUG, Django answers a 404 with its technical page (the URL patterns, the
exception) instead of `404.html`. The people who try the portal in development are its
users as much as its developers: a record that is not there, or not theirs to see,
should look as it does in production. Server errors keep the technical page, which is
what a developer needs.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver
from django.views.defaults import page_not_found


class BrandedNotFoundMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG:
            # A URL no pattern matches never reaches a view (or process_exception).
            try:
                get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
            except Resolver404 as exc:
                return page_not_found(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if settings.DEBUG and isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
