"""The superuser's reset of a lost two-factor device: an action on the users' admin
list, with a confirmation page, recorded in the user's admin history and the logs."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import two_factor

logger = logging.getLogger(__name__)


@admin.action(description="Reset two-factor login (lost phone)", permissions=["two_factor_reset"])
def reset_two_factor(modeladmin, request: HttpRequest, queryset):
    if not request.user.is_superuser:
        raise PermissionDenied("Only a superuser resets two-factor logins.")
    users = list(queryset)
    if request.POST.get("confirmed") != "yes":
        with_devices = set(TOTPDevice.objects.filter(user__in=users).values_list("user", flat=True))
        with_devices |= set(
            StaticDevice.objects.filter(user__in=users).values_list("user", flat=True)
        )
        for user in users:
            user.devices = user.pk in with_devices
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": "Reset two-factor login",
            "opts": modeladmin.model._meta,
            "users": users,
        }
        return TemplateResponse(request, "two_factor/reset_confirm.html", context)
    for user in users:
        removed = two_factor.reset_devices(user)
        modeladmin.log_change(
            request, user, f"Reset two-factor login: removed {removed} device(s)."
        )
        logger.warning(
            "two-factor login of %s reset by %s",
            user.get_username(),
            request.user.get_username(),
            extra={"user": user.get_username(), "actor": request.user.get_username()},
        )
    names = ", ".join(u.get_username() for u in users)
    modeladmin.message_user(
        request,
        f"Two-factor login reset for {names}: they set it up again at their next login.",
        messages.SUCCESS,
    )
    return None


def install(site: admin.AdminSite) -> None:
    """Add the reset to the users' admin. (django-otp's own device admins stay, for
    superusers, without the secrets: OTP_ADMIN_HIDE_SENSITIVE_DATA.)"""
    User = get_user_model()
    user_admin = site._registry.get(User)
    if user_admin is not None:
        user_admin.actions = [*(user_admin.actions or ()), reset_two_factor]
        user_admin.has_two_factor_reset_permission = (  # type: ignore[attr-defined]
            lambda request: request.user.is_superuser
        )
