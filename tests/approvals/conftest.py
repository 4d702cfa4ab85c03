"""Fixtures of the approvals tests: the people in each role, today, an account to act on."""

from types import SimpleNamespace

import pytest
from django.utils import timezone

from tests.approvals.helpers import World, account, processed_q1, reset
from tests.factories import UserFactory


@pytest.fixture
def p():
    """The people: one of each role, two where a test needs a second one."""
    roles = {
        "owner": ["sales"],
        "ops": ["sales_ops"],
        "ops2": ["sales_ops"],
        "executive": ["executive"],
        "finance": ["finance"],
        "support": ["support"],
        "support2": ["support"],
        "manager": ["support_manager"],
        "desk": ["deal_desk"],
        "desk2": ["deal_desk"],
    }
    return SimpleNamespace(
        **{name: UserFactory(username=name, roles=r) for name, r in roles.items()}
    )


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the block as a transaction that commits: its on-commit emails are sent."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def world() -> World:
    owner = UserFactory(roles=["sales"], username="owner")
    customer, sub = account(owner)
    return World(
        owner=owner,
        customer=customer,
        sub=sub,
        recon=processed_q1(sub),
        filer=UserFactory(roles=["support"], username="filer"),
        approver=UserFactory(roles=["sales_ops"], username="approver"),
        today=timezone.localdate(),
    )


@pytest.fixture
def eleven(p, today):
    """A reset waiving 11 seats: max seats used 111 down to 100, 95 in use."""
    _, sub = account(p.owner, seats=100, in_use=95, max_used=111)
    return reset(sub, p.owner, today, new_max_seats=100)


@pytest.fixture
def recon(p):
    _, sub = account(p.owner, seats=110, in_use=100, max_used=110)
    return processed_q1(sub)
