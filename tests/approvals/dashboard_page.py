"""Reading the home page's dashboard as a user reads it: the text of its rows."""

from __future__ import annotations

import html
import re

from django.test import Client

from tests.factories import UserFactory

HOME = "/admin/"


def text(fragment: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def home(user, client: Client | None = None) -> str:
    response = (client or logged_in(user)).get(HOME)
    assert response.status_code == 200
    return response.content.decode()


def rows(page: str, attribute: str) -> dict[str, str]:
    """The text of each `<tr data-<attribute>="key">` row, by key."""
    found = re.findall(rf'<tr data-{attribute}="([^"]+)">(.*?)</tr>', page, flags=re.DOTALL)
    return {key: text(row) for key, row in found}


def queues(page: str) -> dict[str, str]:
    return rows(page, "queue")


def section(page: str, element_id: str) -> str:
    """The text of the dashboard module `element_id` ("" when the page has none)."""
    match = re.search(
        rf'<div class="module[^"]*" id="{element_id}">(.*?)\n  </div>', page, flags=re.DOTALL
    )
    return text(match.group(1)) if match else ""


def revenue_table(page: str, currency: str) -> dict[str, str]:
    match = re.search(rf'<table id="revenue-table-{currency}".*?</table>', page, flags=re.DOTALL)
    return rows(match.group(0), "quarter") if match else {}


def person(role: str, name: str | None = None):
    return UserFactory(roles=[role], username=name or f"dash-{role}")
