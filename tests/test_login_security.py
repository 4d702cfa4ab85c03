"""Logging in to the portal: failed logins lock a username out from one address for a
while, sessions last a working day, CSRF guards the login form, every page but /healthz
needs a login, and history can be read but never restored."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db.models import F
from django.test import Client, RequestFactory
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from subscriptions.models import Customer
from tests.assertions import admin_url
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
WORKING_DAY = 8 * 60 * 60


@pytest.fixture
def staff(user_with_role):
    return user_with_role("support", username="lee")  # password "pw"


def log_in(client, username="lee", password="pw", address="10.0.0.1"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def fail(client, times, **kwargs):
    return [log_in(client, password="wrong", **kwargs).status_code for _ in range(times)]


def age_attempts(minutes):
    """Move every recorded failure `minutes` into the past, as if that time had passed."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


# --- Lockout --------------------------------------------------------------------------


def test_five_failures_lock_the_login_even_with_the_right_password(client, staff, settings):
    assert settings.AXES_ENABLED
    assert settings.AXES_FAILURE_LIMIT == 5

    # Four wrong passwords get the login form again; the fifth the lockout page.
    assert fail(client, 5) == [200, 200, 200, 200, 429]
    locked = log_in(client)

    assert locked.status_code == 429
    assert not logged_in(client)
    assert "registration/locked_out.html" in [t.name for t in locked.templates]
    page = locked.content.decode()
    assert "locked after 5 failed attempts" in page
    assert "Try again in 15 minutes" in page
    assert "Billing operations portal" in page  # the admin's header, not a bare error


def test_the_lockout_is_for_one_username_from_one_address(client, staff, user_with_role):
    user_with_role("support", username="kim")
    fail(client, 5)

    assert log_in(client, address="10.0.0.1").status_code == 429
    assert log_in(client, address="10.0.0.2").status_code == 302
    client.logout()
    assert log_in(client, username="kim", address="10.0.0.1").status_code == 302


def test_a_login_works_again_once_the_cool_off_has_passed(client, staff):
    fail(client, 5)
    assert log_in(client).status_code == 429
    age_attempts(minutes=16)

    assert log_in(client).status_code == 302
    assert logged_in(client)


def test_trying_again_while_locked_starts_the_wait_again(client, staff):
    fail(client, 5)
    age_attempts(minutes=10)
    assert log_in(client).status_code == 429  # refused, and the wait starts again
    age_attempts(minutes=10)  # 20 minutes after the lockout, 10 after the last try

    assert log_in(client).status_code == 429
    assert not logged_in(client)


def test_a_successful_login_resets_the_count(client, staff):
    fail(client, 4)
    assert log_in(client).status_code == 302
    assert not AccessAttempt.objects.exists()
    client.logout()

    assert fail(client, 4) == [200] * 4
    assert log_in(client).status_code == 302


def test_an_administrator_can_unlock_a_username(client, staff):
    fail(client, 5)
    assert log_in(client).status_code == 429

    call_command("axes_reset_username", "lee")

    assert log_in(client).status_code == 302


def test_superusers_see_the_lockouts_in_the_admin(client, staff, admin_client):
    fail(client, 5)

    page = admin_client.get(admin_url(AccessAttempt))

    assert page.status_code == 200
    assert "lee" in page.content.decode()


def test_a_superuser_cleans_up_expired_lockouts_from_the_admin(client, staff, admin_client):
    fail(client, 5)
    fail(client, 2, username="kim", address="10.0.0.2")
    AccessAttempt.objects.filter(username="lee").update(
        attempt_time=F("attempt_time") - timedelta(hours=2)
    )

    page = admin_client.post(
        admin_url(AccessAttempt),
        {
            "action": "clean_expired_attempts",
            "_selected_action": [AccessAttempt.objects.first().pk],
        },
        follow=True,
    )

    assert page.status_code == 200
    assert "Cleaned up 1 expired access attempts." in page.content.decode()
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["kim"]


# --- Sessions and cookies -------------------------------------------------------------


def test_a_session_lasts_a_working_day_and_ends_with_the_browser(client, staff, settings):
    assert not settings.SESSION_SAVE_EVERY_REQUEST
    before = timezone.now()
    response = log_in(client)

    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # a browser-session cookie
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    session = Session.objects.get(session_key=cookie.value)
    assert before + timedelta(seconds=WORKING_DAY) <= session.expire_date
    assert session.expire_date <= timezone.now() + timedelta(seconds=WORKING_DAY)
    assert client.session.get_expire_at_browser_close()


def test_an_expired_session_is_sent_back_to_the_login(client, staff):
    log_in(client)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_the_login_page_sends_the_security_headers():
    client = Client(enforce_csrf_checks=True)
    response = client.get(LOGIN)

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    csrf_cookie = response.cookies["csrftoken"]
    assert csrf_cookie["httponly"] is True
    assert csrf_cookie["samesite"] == "Lax"


# --- CSRF -----------------------------------------------------------------------------


def test_the_login_form_needs_its_csrf_token(staff):
    client = Client(enforce_csrf_checks=True)
    token = client.get(LOGIN).context["csrf_token"]

    without = client.post(LOGIN, {"username": "lee", "password": "pw"})
    assert without.status_code == 403
    assert not logged_in(client)

    with_token = client.post(
        LOGIN, {"username": "lee", "password": "pw", "csrfmiddlewaretoken": str(token)}
    )
    assert with_token.status_code == 302
    assert logged_in(client)


def test_a_refused_csrf_post_is_not_a_failed_login(staff):
    client = Client(enforce_csrf_checks=True)
    for _ in range(6):
        client.post(LOGIN, {"username": "lee", "password": "wrong"})

    assert not AccessAttempt.objects.exists()


# --- Who may see what -----------------------------------------------------------------


def admin_pages():
    for model, model_admin in admin.site._registry.items():
        yield admin_url(model)
        if isinstance(model_admin, SimpleHistoryAdmin):
            yield admin_url(model, "history", 1)
    yield from ("/", "/admin/", "/admin/subscriptions/", "/admin/approvals/")


def test_every_page_but_healthz_sends_anonymous_visitors_to_the_login(client):
    for page in admin_pages():
        response = client.get(page, follow=True)
        assert response.redirect_chain, page
        assert response.redirect_chain[-1][0].startswith(LOGIN), page

    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.content == b"ok"


# --- History is read-only -------------------------------------------------------------


def test_every_history_admin_refuses_to_revert_even_for_superusers(admin_user):
    request = RequestFactory().get("/")
    request.user = admin_user
    history_admins = [a for a in admin.site._registry.values() if isinstance(a, SimpleHistoryAdmin)]

    assert history_admins
    for model_admin in history_admins:
        assert model_admin.revert_disabled(request), type(model_admin).__name__


def test_an_old_customer_version_is_shown_but_not_restored(admin_client):
    customer = CustomerFactory(billing_email="old@example.com")
    old = customer.history.earliest()
    Customer.objects.filter(pk=customer.pk).update(billing_email="new@example.com")
    version = admin_url(Customer, "simple_history", customer.pk, old.history_id)

    page = admin_client.get(version)
    assert page.status_code == 200
    assert page.context["revert_disabled"]
    assert not page.context["change_history"]
    text = page.content.decode()
    assert 'name="_save"' not in text
    assert 'name="_change_history"' not in text
    assert "Revert" not in text

    posted = admin_client.post(
        version, {"name": customer.name, "billing_email": "old@example.com", "_save": "Revert"}
    )
    assert posted.status_code == 403
    customer.refresh_from_db()
    assert customer.billing_email == "new@example.com"
    assert customer.history.count() == 1
