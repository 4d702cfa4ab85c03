"""One way to write a value everywhere (portal/formats.py, subscriptions.billing
.format_money), the portal's own error pages, favicon and stylesheet, email links that
follow the port the portal runs on, and the product rules kept in the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.template import loader
from django.test import RequestFactory, override_settings
from django.views.defaults import server_error

from portal.formats import EMPTY, count, day, moment
from subscriptions.billing import format_money
from subscriptions.models import Subscription
from tests.assertions import admin_url
from tests.factories import SubscriptionFactory

ROOT = Path(__file__).resolve().parents[1]


# --- Values ------------------------------------------------------------------------------


def test_dates_are_iso_and_times_are_local_to_the_minute():
    assert day(date(2026, 11, 27)) == "2026-11-27"
    assert day(None) == EMPTY == "—"
    with override_settings(TIME_ZONE="Europe/Berlin"):
        assert moment(datetime(2026, 11, 27, 13, 5, 59, tzinfo=UTC)) == "2026-11-27 14:05"
        # A moment late in the evening UTC is the next day in Berlin, on a page as in text.
        assert day(datetime(2026, 11, 27, 23, 30, tzinfo=UTC)) == "2026-11-28"


@pytest.mark.parametrize(
    ("number", "noun", "shown"),
    [
        (0, "seat", "0 seats"),
        (1, "seat", "1 seat"),
        (2, "seat", "2 seats"),
        (1200, "seat", "1,200 seats"),
        (1, "free day", "1 free day"),
        (30, "free day", "30 free days"),
        (1, "remaining quarter", "1 remaining quarter"),
    ],
)
def test_counts_carry_the_right_plural(number, noun, shown):
    assert count(number, noun) == shown


def test_money_has_one_form_the_sign_after_the_currency():
    assert format_money(Decimal("-594"), "USD") == "USD -594.00"
    assert format_money(Decimal("1000"), "USD") == "USD 1,000.00"
    assert format_money(Decimal("-14000"), "JPY") == "JPY -14,000"


def test_code_never_writes_a_minus_before_a_formatted_amount():
    """ "-USD 594.00" next to "USD -594.00": a negative amount is formatted as one."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("portal", "subscriptions", "approvals", "outbox")
        for path in (ROOT / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"-\{(billing\.)?format_money\(|-\{money\(", line)
    ]
    assert offenders == []


@pytest.mark.django_db
def test_lists_and_record_pages_show_dates_as_the_code_writes_them(admin_client):
    sub = SubscriptionFactory(term_start=date(2026, 7, 4), term_end=date(2027, 7, 4))

    listing = admin_client.get(admin_url(Subscription)).text
    page = admin_client.get(admin_url(Subscription, "change", sub.pk)).text

    for text in (listing, page):
        assert "2026-07-04" in text and "2027-07-04" in text
        assert "July 4, 2026" not in text and "Jul. 4" not in text
    # The record's timestamps, to the minute.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert "p.m." not in page and "a.m." not in page


@pytest.mark.django_db
def test_an_empty_value_shows_one_marker(admin_client):
    sub = SubscriptionFactory()  # no bug link, no ticket, never changed

    page = admin_client.get(admin_url(Subscription, "change", sub.pk)).text

    assert '<div class="readonly">—</div>' in page
    assert '<div class="readonly">-</div>' not in page


# --- Portal, not Django ------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_pages_carry_the_favicon_and_the_portal_stylesheet_and_no_view_site(admin_client):
    page = admin_client.get(admin_url(Subscription)).text

    assert '<link rel="icon" href="/static/portal/favicon.svg" type="image/svg+xml">' in page
    assert 'href="/static/portal/portal.css"' in page
    assert "View site" not in page
    assert finders.find("portal/favicon.svg") and finders.find("portal/portal.css")


def test_the_stylesheet_scrolls_wide_lists_and_keeps_buttons_off_the_title():
    css = (ROOT / "portal/static/portal/portal.css").read_text()
    results = css[css.index("#changelist-form .results {") :]
    assert "overflow-x: auto" in results[: results.index("}")]
    tools = css[css.index(".change-form #content .object-tools {") :]
    assert "float: none" in tools[: tools.index("}")]
    assert "flex-wrap: wrap" in tools[: tools.index("}")]


@pytest.mark.django_db
def test_a_refusal_is_the_portals_page(client, user_with_role):
    sub = SubscriptionFactory(
        qsr_state="disabled_for_bug", qsr_bug_url="https://bugs.example.com/1"
    )
    client.force_login(user_with_role("finance"))

    response = client.get(admin_url(Subscription, "do", sub.pk, "enable-qsr"))

    assert response.status_code == 403
    assert "Billing operations portal" in response.text
    assert "Django" not in response.text
    assert "Nothing was changed." in response.text
    assert 'rel="icon"' in response.text


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "development"])
@pytest.mark.parametrize(
    "path",
    ["/admin/subscriptions/subscription/999999/do/amend/", "/nowhere/"],
    ids=["missing-record", "unknown-url"],
)
def test_a_missing_page_is_the_portals_page_in_development_too(admin_client, debug, path):
    from portal.settings import dev

    with override_settings(DEBUG=debug, MIDDLEWARE=dev.MIDDLEWARE):
        response = admin_client.get(path)

    assert response.status_code == 404
    assert "Billing operations portal" in response.text
    assert "Not found" in response.text
    assert "URLconf" not in response.text and "Django" not in response.text


@pytest.mark.django_db
def test_development_still_finds_the_pages_that_exist(admin_client):
    from portal.settings import dev

    with override_settings(DEBUG=True, MIDDLEWARE=dev.MIDDLEWARE):
        assert admin_client.get("/admin/").status_code == 200
        # The admin's "add a slash" redirect still comes first.
        assert admin_client.get("/admin").status_code == 301


def test_the_server_error_page_needs_no_request_context_nor_database():
    # No django_db mark: any query here fails the test.
    page = loader.get_template("500.html").render()
    response = server_error(RequestFactory().get("/admin/"))

    assert "Billing operations portal" in page and "Something went wrong" in page
    assert response.status_code == 500
    assert b"Billing operations portal" in response.content


# --- Email links -------------------------------------------------------------------------


def _dev_base_url(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    environment.update(env)
    code = "import portal.settings.dev as s; print(s.PORTAL_BASE_URL)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_email_links_follow_the_port_the_portal_runs_on():
    assert _dev_base_url() == "http://127.0.0.1:8000"
    assert _dev_base_url(PORTAL_PORT="8123") == "http://127.0.0.1:8123"
    assert _dev_base_url(PORTAL_HOST="0.0.0.0", PORTAL_PORT="9000") == "http://127.0.0.1:9000"
    assert (
        _dev_base_url(PORTAL_PORT="8123", PORTAL_BASE_URL="https://portal.example.com")
        == "https://portal.example.com"
    )


# --- The product rules travel with the code ----------------------------------------------


def test_the_readme_links_only_to_files_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    local = [link for link in links if "://" not in link]

    assert "docs/DOMAIN.md" in local and "docs/STYLE.md" in local
    assert [link for link in local if not (ROOT / link).is_file()] == []


def test_nothing_points_outside_the_repository_for_its_rules():
    skipped = {".git", ".venv", "var", "node_modules", "__pycache__"}
    outside = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skipped]
        for name in files:
            path = Path(folder, name)
            if path.suffix not in {".py", ".md", ".html", ".txt", ".toml", ".cfg", ""}:
                continue
            if path.name != Path(__file__).name and "shared/docs" in path.read_text(
                errors="ignore"
            ):
                outside.append(str(path.relative_to(ROOT)))
    assert outside == []


def test_the_worked_examples_the_tests_reproduce_are_in_the_rules():
    rules = (ROOT / "docs/DOMAIN.md").read_text()
    for example in (
        "Q1 max 110 -> 10 x 25.00 x 3 = 750.00",
        "credit -7,035.62 (214 days)",
        "net -2,005.48",
        "Nobody approves their own request.",
    ):
        assert example in rules
