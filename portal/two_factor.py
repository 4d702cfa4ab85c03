"""Two-factor login (README "Deploying"): an authenticator app (TOTP, django-otp) after
the password, for the staff who move money.

Who must: with `PORTAL_OTP_REQUIRED` (production), superusers and the roles in
MONEY_ROLES must enrol a device, and must enter a code after their password before any
page; everyone else may enrol, and once enrolled must enter codes too. With
`PORTAL_OTP_ENROLLED_MUST_VERIFY` alone (the demo), only those who enrolled must.
Neither (tests, dev by default): nobody is asked.

`TwoFactorMiddleware` enforces it on every page but the login, logout and two-factor
pages themselves: a GET goes to enrolment or to the code page, any other request is
refused (403) and changes nothing. The services are reached only through those pages,
so no action or queue can be.

Each user has one authenticator app (a `TOTPDevice`) and ten one-use recovery codes (a
`StaticDevice`). Wrong codes are counted per user, on the TOTP device (so in the
database, the same for every web process): PORTAL_OTP_FAILURE_LIMIT of them, each
within PORTAL_OTP_COOLOFF of the last, lock code entry for PORTAL_OTP_COOLOFF, counted
again from each further try. A right code clears the count. A superuser resets a lost
device from the user's admin page (`portal/two_factor_admin.py`).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.policy import roles_of
from portal.roles import DEAL_DESK, EXECUTIVE, FINANCE, SALES_OPS, SUPPORT_MANAGER

logger = logging.getLogger(__name__)

# The roles that approve, process or decide money (DOMAIN.md "Who uses the portal").
MONEY_ROLES = frozenset({SALES_OPS, DEAL_DESK, EXECUTIVE, FINANCE, SUPPORT_MANAGER})
APP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
# The pages a user who still owes a code may see.
OPEN_URL_NAMES = (
    "admin:login",
    "admin:logout",
    "two_factor_verify",
    "two_factor_enrol",
    "healthz",
    "metrics",
)


def enrolment_required(user) -> bool:
    """Whether `user` must have an authenticator app (PORTAL_OTP_REQUIRED and a money
    role or superuser)."""
    return bool(
        settings.PORTAL_OTP_REQUIRED
        and user.is_authenticated
        and (user.is_superuser or roles_of(user) & MONEY_ROLES)
    )


def app_device(user) -> TOTPDevice | None:
    """The user's confirmed authenticator app, if they enrolled."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def must_verify(user) -> bool:
    """Whether `user` must enter a code this session before any page."""
    if not user.is_authenticated:
        return False
    if enrolment_required(user):
        return True
    if settings.PORTAL_OTP_REQUIRED or settings.PORTAL_OTP_ENROLLED_MUST_VERIFY:
        return app_device(user) is not None
    return False


class TwoFactorMiddleware:
    """After django-otp's OTPMiddleware: sends a user who owes a code to enter it (or to
    enrol first), and refuses anything but a GET until they have."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._open_paths: frozenset[str] | None = None

    def open_paths(self) -> frozenset[str]:
        if self._open_paths is None:
            self._open_paths = frozenset(reverse(name) for name in OPEN_URL_NAMES)
        return self._open_paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and request.path not in self.open_paths()
            and not user.is_verified()  # type: ignore[attr-defined]
            and must_verify(user)
        ):
            if request.method not in ("GET", "HEAD"):
                logger.warning(
                    "refused %s %s: no two-factor code entered yet",
                    request.method,
                    request.path,
                    extra={"user": user.get_username(), "path": request.path},
                )
                raise PermissionDenied(
                    "Enter a code from your authenticator app before making changes."
                )
            page = "two_factor_verify" if app_device(user) else "two_factor_enrol"
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse(page)}?{query}")
        return self.get_response(request)


# --- Wrong codes ------------------------------------------------------------------------


def locked(device: TOTPDevice) -> bool:
    """Whether code entry is locked for the device's user."""
    last = device.throttling_failure_timestamp
    return bool(
        device.throttling_failure_count >= settings.PORTAL_OTP_FAILURE_LIMIT
        and last is not None
        and timezone.now() - last < settings.PORTAL_OTP_COOLOFF
    )


def _count_failure(device: TOTPDevice) -> None:
    """One more wrong code (or a try while locked): counted from the last one, unless
    that was longer than the cool-off ago."""
    last = device.throttling_failure_timestamp
    fresh = last is None or timezone.now() - last >= settings.PORTAL_OTP_COOLOFF
    device.throttling_failure_count = 1 if fresh else device.throttling_failure_count + 1
    device.throttling_failure_timestamp = timezone.now()
    device.save(update_fields=["throttling_failure_count", "throttling_failure_timestamp"])


def check_code(user, code: str) -> TOTPDevice | StaticDevice | None:
    """The device that accepts `code` (a code from the app, or an unused recovery code,
    which is then used up), or None. Counts a wrong code; refuses while locked."""
    code = "".join(code.split())
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            return None
        if locked(device):
            _count_failure(device)
            raise CodeEntryLocked
        count, last = device.throttling_failure_count, device.throttling_failure_timestamp
        if code.isdigit() and device.verify_token(code):
            return device
        # django-otp's own counting (off: OTP_TOTP_THROTTLE_FACTOR = 0) leaves its mark
        # on the same fields; ours decides.
        device.throttling_failure_count, device.throttling_failure_timestamp = count, last
        recovery = StaticDevice.objects.filter(user=user, confirmed=True).first()
        if recovery is not None and recovery.verify_token(code):
            device.throttle_reset()
            return recovery
        _count_failure(device)
        if locked(device):
            logger.warning(
                "two-factor code entry locked for %s after %s wrong codes",
                user.get_username(),
                device.throttling_failure_count,
                extra={"user": user.get_username()},
            )
        return None


class CodeEntryLocked(Exception):
    """Too many wrong codes: code entry is locked for a while."""


# --- Enrolment --------------------------------------------------------------------------


def pending_app_device(user) -> TOTPDevice:
    """The authenticator app being enrolled: the same secret until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=APP_NAME, confirmed=False)


def confirm_enrolment(user, device: TOTPDevice) -> list[str]:
    """Confirm the app and make new recovery codes, returned to show once."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(settings.PORTAL_OTP_RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=recovery, token=c) for c in codes)
    logger.info("two-factor enrolled for %s", user.get_username())
    return codes


def reset_devices(user) -> int:
    """Remove the user's authenticator app and recovery codes (a lost phone): they
    enrol again at their next login. Returns how many devices went."""
    with transaction.atomic():
        apps = TOTPDevice.objects.filter(user=user)
        recovery = StaticDevice.objects.filter(user=user)
        count = apps.count() + recovery.count()
        apps.delete()
        recovery.delete()
    return count
