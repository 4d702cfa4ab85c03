import pytest


@pytest.fixture
def user_with_role(db):
    """Make a staff user in the given role groups: user_with_role("support")."""
    from tests.factories import UserFactory

    def make(*roles: str, **kwargs):
        return UserFactory(roles=roles, **kwargs)

    return make
