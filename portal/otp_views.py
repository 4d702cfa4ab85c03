"""The two-factor pages (portal/two_factor.py): enter a code after the password, and
enrol an authenticator app (a QR code, then ten recovery codes shown once)."""

from __future__ import annotations

from base64 import b32encode
from urllib.parse import urlencode

import django_otp
import segno
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from portal import two_factor


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        strip=True,
        # Not numeric only: recovery codes have letters.
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
        help_text="The six digits your authenticator app shows, or one of your recovery codes.",
    )


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe else "/admin/"


def _page(request: HttpRequest, template: str, title: str, status: int = 200, **context):
    return render(
        request,
        template,
        {**admin.site.each_context(request), "title": title, "next": _next(request), **context},
        status=status,
    )


def _locked_page(request: HttpRequest) -> HttpResponse:
    minutes = int(settings.PORTAL_OTP_COOLOFF.total_seconds() // 60)
    return _page(
        request,
        "two_factor/locked.html",
        "Too many wrong codes",
        status=429,
        failure_limit=settings.PORTAL_OTP_FAILURE_LIMIT,
        cooloff_minutes=minutes,
    )


@never_cache
@sensitive_post_parameters("code")
@login_required
def verify(request: HttpRequest) -> HttpResponse:
    """Enter a code from the app (or a recovery code) to finish logging in."""
    user = request.user
    device = two_factor.app_device(user)
    if device is None:
        return redirect(f"{reverse('two_factor_enrol')}?{urlencode({'next': _next(request)})}")
    if user.is_verified():  # type: ignore[union-attr]
        return redirect(_next(request))
    if two_factor.locked(device) and request.method != "POST":
        return _locked_page(request)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            accepted = two_factor.check_code(user, form.cleaned_data["code"])
        except two_factor.CodeEntryLocked:
            return _locked_page(request)
        if accepted is not None:
            django_otp.login(request, accepted)
            return redirect(_next(request))
        form.add_error("code", "That code is not right, or was used already. Try again.")
        device.refresh_from_db()
        if two_factor.locked(device):
            return _locked_page(request)
    return _page(request, "two_factor/verify.html", "Two-factor login", form=form)


@never_cache
@sensitive_post_parameters("code")
@login_required
def enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the QR code, enter the code it shows."""
    user = request.user
    if two_factor.app_device(user) is not None:
        return _page(request, "two_factor/enrolled.html", "Two-factor login")
    device = two_factor.pending_app_device(user)
    form = CodeForm(request.POST or None)
    form.fields["code"].help_text = "The six digits the app shows after you scanned the code."
    if request.method == "POST" and form.is_valid():
        code = "".join(form.cleaned_data["code"].split())
        if code.isdigit() and device.verify_token(code):
            codes = two_factor.confirm_enrolment(user, device)
            django_otp.login(request, device)
            return _page(
                request, "two_factor/recovery_codes.html", "Your recovery codes", codes=codes
            )
        form.add_error("code", "That code is not right. Check the app shows this portal's code.")
    qr = segno.make(device.config_url, error="m")
    return _page(
        request,
        "two_factor/enrol.html",
        "Set up two-factor login",
        form=form,
        qr_svg=qr.svg_inline(scale=4, dark="#000", light="#fff"),
        secret=b32encode(device.bin_key).decode(),
        required=two_factor.enrolment_required(user),
    )
