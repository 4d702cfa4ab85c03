import pytest

from portal.policy import SYSTEM
from subscriptions.services.customers import customer_assign_owner
from tests.admin_buttons import GROUP, ROLES, Portal
from tests.factories import CustomerFactory


@pytest.fixture
def user_with_role(db):
    """Make a staff user in the given role groups: user_with_role("support")."""
    from tests.factories import UserFactory

    def make(*roles: str, **kwargs):
        return UserFactory(roles=roles, **kwargs)

    return make


@pytest.fixture
def portal(user_with_role) -> Portal:
    users = {
        role: user_with_role(GROUP.get(role, role), username=role.replace("_", "."))
        for role in ROLES
    }
    customer = CustomerFactory(name="Acme Corp")
    customer = customer_assign_owner(customer=customer, owner=users["sales_owner"], actor=SYSTEM)
    return Portal(users=users, customer=customer)
