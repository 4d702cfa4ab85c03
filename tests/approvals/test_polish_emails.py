"""The approvals emails as their readers see them: the requester learns who decided, in
which slot and why; counts carry the right plural; links point at the portal's address."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import override_settings

from approvals.services import approval_approve
from tests.approvals.helpers import account, fresh, reset, sent_to

pytestmark = pytest.mark.django_db


def test_the_requesters_email_says_who_decided_and_why(p, today, committed):
    _, sub = account(p.owner, seats=100, in_use=95, max_used=101)
    request = reset(sub, p.owner, today, new_max_seats=100)
    mail.outbox.clear()

    with committed():
        approval_approve(request=request, actor=p.ops, reason="Bot accounts, confirmed.")

    (email,) = [m for m in mail.outbox if p.owner.email in m.to]
    assert "At stake: 1 seat, USD " in email.body
    assert re.search(
        r"- Sales ops or support manager: approved by ops on \d{4}-\d\d-\d\d \d\d:\d\d: "
        r"Bot accounts, confirmed\.",
        email.body,
    )
    assert sent_to(p.owner) == [f"Your request was approved: {fresh(request)}"]


@override_settings(PORTAL_BASE_URL="http://127.0.0.1:8123")
def test_email_links_use_the_portals_address(p, today, committed):
    _, sub = account(p.owner, seats=100, in_use=95, max_used=101)

    with committed():
        request = reset(sub, p.owner, today, new_max_seats=100)

    (email,) = [m for m in mail.outbox if p.ops.email in m.to]
    assert (
        f"http://127.0.0.1:8123/admin/approvals/approvalrequest/{request.pk}/change/" in email.body
    )
