"""The page a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): the admin's look,
how long to wait and whom to ask, instead of a bare error page."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }
    # django-axes puts its defaults on settings when it is imported; the stubs cannot know.
    status = settings.AXES_HTTP_RESPONSE_CODE  # type: ignore[misc]
    return render(request, "registration/locked_out.html", context, status=status)


@admin.action(description="Clean up expired attempts")
def clean_expired_attempts(modeladmin, request: HttpRequest, queryset) -> None:
    """django-axes' own action reads the attempt time its login handler puts on the
    request, which an admin action's request never has (a 500): set it to now."""
    from axes.handlers.database import AxesDatabaseHandler
    from django.utils import timezone

    request.axes_attempt_time = timezone.now()  # type: ignore[attr-defined]
    count = AxesDatabaseHandler().clean_expired_user_attempts(request=request)
    modeladmin.message_user(request, f"Cleaned up {count} expired access attempts.")
