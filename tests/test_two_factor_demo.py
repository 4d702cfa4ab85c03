"""The demo shows two-factor login on one login: seed_demo gives `sales_ops` an
authenticator app and prints its secret beside its password, and the demo's settings
ask for a code from those who enrolled (PORTAL_OTP_ENROLLED_MUST_VERIFY)."""

from base64 import b32decode
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


def seed(tmp_path) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        "--customers=3",
        f"--logins-file={tmp_path / 'logins.txt'}",
        "--force",
        "--no-progress",
        stdout=out,
    )
    return out.getvalue()


def test_the_demo_prints_the_two_factor_secret_and_the_login_asks_for_its_code(tmp_path, settings):
    output = seed(tmp_path)
    logins = {
        line.split()[0]: line.split()[1:]
        for line in (tmp_path / "logins.txt").read_text().splitlines()
    }
    password, secret = logins["sales_ops"]
    assert f"two-factor secret: {secret}" in output
    assert all(len(rest) == 1 for name, rest in logins.items() if name != "sales_ops")
    device = TOTPDevice.objects.get(user__username="sales_ops", confirmed=True)
    assert b32decode(secret) == device.bin_key

    assert seed(tmp_path).count(secret) == 1  # a rerun keeps the same secret
    assert (tmp_path / "logins.txt").read_text().count(secret) == 1

    settings.PORTAL_OTP_ENROLLED_MUST_VERIFY = True  # what dev settings say
    client = Client()
    client.post("/admin/login/", {"username": "sales_ops", "password": password})
    assert client.get("/admin/")["Location"].startswith("/admin/two-factor/")
    code = f"{TOTP(b32decode(secret)).token():06d}"  # what the authenticator app shows
    assert client.post("/admin/two-factor/", {"code": code}).status_code == 302
    assert client.get("/admin/").status_code == 200

    support = Client()  # the other demo logins need no code
    support.post("/admin/login/", {"username": "support", "password": logins["support"][0]})
    assert support.get("/admin/").status_code == 200


def test_dev_settings_ask_enrolled_users_for_codes_and_test_settings_nobody(settings):
    from portal.settings import dev

    assert dev.PORTAL_OTP_ENROLLED_MUST_VERIFY and not dev.PORTAL_OTP_REQUIRED
    assert not settings.PORTAL_OTP_REQUIRED and not settings.PORTAL_OTP_ENROLLED_MUST_VERIFY
