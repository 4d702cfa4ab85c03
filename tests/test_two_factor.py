"""Two-factor login (README "Deploying"): the roles that move money and superusers must
enrol an authenticator app and enter a code after their password; until they have,
no page, queue or action of the portal is theirs, and a forged POST changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from approvals.models import ApprovalDecision, ApprovalRequest
from portal import two_factor
from tests.admin_buttons import do_url, reset_request
from tests.assertions import admin_url

pytestmark = pytest.mark.django_db

VERIFY = "/admin/two-factor/"
ENROL = "/admin/two-factor/enrol/"


@pytest.fixture(autouse=True)
def otp_on(settings):
    settings.PORTAL_OTP_REQUIRED = True


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """What the user's authenticator app shows now (or `steps_ahead` steps of 30 s
    later, within the tolerance of one step: a code is accepted only once)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def enrolled(user) -> TOTPDevice:
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    StaticToken.objects.create(device=recovery, token="recover1")
    StaticToken.objects.create(device=recovery, token="recover2")
    return device


def log_in(client, username, password="pw", next_page="/admin/"):
    return client.post(
        "/admin/login/", {"username": username, "password": password, "next": next_page}
    )


def enter(client, code, next_page="/admin/"):
    return client.post(VERIFY, {"code": code, "next": next_page})


# --- Who must ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", ["sales_ops", "deal_desk", "executive", "finance", "support_manager"]
)
def test_a_money_role_without_a_device_is_sent_to_enrol_from_any_page(client, user_with_role, role):
    user_with_role(role, username="pat")
    assert log_in(client, "pat").status_code == 302

    for page in ("/admin/", admin_url(ApprovalRequest), "/admin/subscriptions/"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"] == f"{ENROL}?next={page.replace('/', '%2F')}", page


def test_a_superuser_must_enrol_too(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/")["Location"].startswith(ENROL)


def test_other_roles_are_not_forced(client, user_with_role):
    for role in ("support", "sales"):
        user_with_role(role, username=role)
        client.force_login(get_user_model().objects.get(username=role))
        assert client.get("/admin/").status_code == 200, role


def test_every_page_links_to_enrolment_for_the_optional_roles(client, user_with_role):
    user_with_role("support", username="lee")
    client.force_login(get_user_model().objects.get(username="lee"))
    page = client.get("/admin/").content.decode()
    assert f'<a href="{ENROL}">Two-factor login</a>' in page
    enrol = client.get(ENROL)
    assert enrol.status_code == 200 and b"<svg" in enrol.content


def test_nobody_is_asked_when_two_factor_is_off(client, user_with_role, settings):
    settings.PORTAL_OTP_REQUIRED = False
    user = user_with_role("sales_ops", username="pat")
    enrolled(user)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200


def test_an_optional_role_who_enrolled_must_enter_codes(client, user_with_role):
    user = user_with_role("support", username="lee")
    enrolled(user)
    client.force_login(user)
    assert client.get("/admin/")["Location"].startswith(VERIFY)


# --- Refused without a verified device --------------------------------------------------


def test_no_queue_action_page_or_forged_post_without_a_device(portal):
    approver = portal.users["sales_ops"]
    request = reset_request(portal)
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    login = client.post(
        "/admin/login/",
        {
            "username": approver.username,
            "password": "pw",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert login.status_code == 302
    url = do_url(request, "approve")

    queue = client.get(admin_url(ApprovalRequest))
    action_page = client.get(url)
    assert queue.status_code == action_page.status_code == 302
    assert queue["Location"].startswith(ENROL) and action_page["Location"].startswith(ENROL)

    token = client.cookies["csrftoken"].value
    forged = client.post(url, {"reason": "ok", "confirmed": "yes", "csrfmiddlewaretoken": token})
    assert forged.status_code == 403
    assert "authenticator app" in forged.content.decode()
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    assert not ApprovalDecision.objects.filter(request=request).exists()

    # The same POST from a verified session is not refused by the check (CSRF passes too).
    device = enrolled(approver)
    client.post(VERIFY, {"code": code_for(device), "csrfmiddlewaretoken": token})
    assert client.get(url).status_code == 200


# --- Enrolment --------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_then_recovery_codes_once(client, user_with_role):
    user = user_with_role("finance", username="fin")
    log_in(client, "fin")

    page = client.get(f"{ENROL}?next=/admin/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in text and "https://" not in text.split("<svg", 1)[1].split("</svg>")[0]
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    secret = re.search(r'class="secret">([A-Z2-7]+)<', text).group(1)
    assert client.get(ENROL).content.decode().count(secret) == 1  # same secret on reload

    wrong = client.post(ENROL, {"code": "000000", "next": "/admin/"})
    assert "That code is not right" in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()

    done = client.post(ENROL, {"code": code_for(device), "next": "/admin/"})
    text = done.content.decode()
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", text)
    assert len(codes) == 10
    assert "only time they are shown" in text
    assert set(
        StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
    ) == set(codes)
    assert client.get("/admin/").status_code == 200  # verified by enrolling

    again = client.get(ENROL).content.decode()
    assert "Two-factor login is on" in again
    assert not any(code in again for code in codes)


# --- Logging in with a code -------------------------------------------------------------


def test_login_asks_for_a_code_after_the_password(client, user_with_role):
    device = enrolled(user_with_role("deal_desk", username="dd"))
    next_page = admin_url(ApprovalRequest)

    response = log_in(client, "dd", next_page=next_page)
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"].startswith(VERIFY)
    form = client.get(f"{VERIFY}?next={next_page}")
    assert "enter the code it shows" in form.content.decode()

    assert "That code is not right" in enter(client, "123456").content.decode()
    assert client.get(next_page).status_code == 302

    done = enter(client, code_for(device), next_page)
    assert done.status_code == 302 and done["Location"] == next_page
    assert client.get(next_page).status_code == 200


def test_a_code_is_accepted_once(client, user_with_role):
    device = enrolled(user_with_role("executive", username="ex"))
    code = code_for(device)
    log_in(client, "ex")
    assert enter(client, code).status_code == 302
    client.logout()

    log_in(client, "ex")
    assert enter(client, code).status_code == 200  # the form again, with its error
    assert client.get("/admin/").status_code == 302


def test_a_recovery_code_works_once(client, user_with_role):
    enrolled(user_with_role("sales_ops", username="so"))
    log_in(client, "so")
    assert enter(client, "recover1").status_code == 302
    assert client.get("/admin/").status_code == 200
    client.logout()

    log_in(client, "so")
    refused = enter(client, "recover1")
    assert "That code is not right, or was used already" in refused.content.decode()
    assert client.get("/admin/").status_code == 302
    assert enter(client, "recover2").status_code == 302
    assert not StaticToken.objects.filter(device__user__username="so").exists()


def test_an_external_next_is_not_followed(client, user_with_role):
    device = enrolled(user_with_role("sales_ops", username="so"))
    log_in(client, "so")
    response = enter(client, code_for(device), next_page="https://evil.example.com/")
    assert response["Location"] == "/admin/"


# --- Wrong codes lock code entry --------------------------------------------------------


def test_five_wrong_codes_lock_code_entry_for_a_while(client, user_with_role, settings):
    assert settings.PORTAL_OTP_FAILURE_LIMIT == 5
    device = enrolled(user_with_role("finance", username="fin"))
    log_in(client, "fin")

    statuses = [enter(client, "999999").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    locked = enter(client, code_for(device))
    assert locked.status_code == 429
    assert "locked after 5 wrong codes" in locked.content.decode()
    assert client.get("/admin/").status_code == 302
    assert client.get(VERIFY).status_code == 429
    # A recovery code is refused too while locked.
    assert enter(client, "recover1").status_code == 429

    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=F("throttling_failure_timestamp") - timedelta(minutes=16)
    )
    assert enter(client, code_for(device)).status_code == 302
    assert client.get("/admin/").status_code == 200
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_old_wrong_codes_do_not_add_up(client, user_with_role):
    enrolled(user_with_role("finance", username="fin"))
    log_in(client, "fin")
    for _ in range(4):
        enter(client, "999999")
    TOTPDevice.objects.update(
        throttling_failure_timestamp=F("throttling_failure_timestamp") - timedelta(minutes=20)
    )
    assert [enter(client, "999999").status_code for _ in range(4)] == [200] * 4


# --- A superuser resets a lost device ---------------------------------------------------


def reset_action(client, user, **extra):
    return client.post(
        admin_url(get_user_model()),
        {"action": "reset_two_factor", "_selected_action": [user.pk], **extra},
    )


def test_a_superuser_resets_a_lost_device_after_confirming(user_with_role, admin_user):
    lost = user_with_role("sales_ops", username="lost")
    enrolled(lost)
    enrolled(admin_user)
    boss = Client()
    boss.force_login(admin_user)
    session = boss.session
    session["otp_device_id"] = TOTPDevice.objects.get(user=admin_user).persistent_id
    session.save()

    confirm = reset_action(boss, lost)
    assert confirm.status_code == 200
    assert "Please confirm" in confirm.content.decode() and "lost" in confirm.content.decode()
    assert TOTPDevice.objects.filter(user=lost).exists()  # nothing yet

    done = reset_action(boss, lost, confirmed="yes")
    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=lost).exists()
    assert not StaticDevice.objects.filter(user=lost).exists()
    trail = LogEntry.objects.get(object_id=str(lost.pk))
    assert trail.user == admin_user
    assert "Reset two-factor login" in trail.get_change_message()

    client = Client()
    log_in(client, "lost")
    assert client.get("/admin/")["Location"].startswith(ENROL)


def test_only_a_superuser_may_reset(user_with_role):
    staff = user_with_role("support", username="sup")
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user"])
    )
    victim = user_with_role("finance", username="victim")
    enrolled(victim)
    client = Client()
    client.force_login(staff)
    reset_action(client, victim, confirmed="yes")
    assert TOTPDevice.objects.filter(user=victim).exists()


# --- The demo: only those who enrolled are asked ----------------------------------------


def test_enrolled_users_must_verify_mode(client, user_with_role, settings):
    settings.PORTAL_OTP_REQUIRED = False
    settings.PORTAL_OTP_ENROLLED_MUST_VERIFY = True
    device = enrolled(user_with_role("sales_ops", username="demo_ops"))
    user_with_role("finance", username="demo_fin")

    client.force_login(get_user_model().objects.get(username="demo_fin"))
    assert client.get("/admin/").status_code == 200
    client.logout()

    log_in(client, "demo_ops")
    assert client.get("/admin/")["Location"].startswith(VERIFY)
    assert enter(client, code_for(device)).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert two_factor.must_verify(device.user)


def test_the_verify_page_needs_a_login(client):
    response = client.get(reverse("two_factor_verify"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
