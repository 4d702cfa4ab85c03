import pytest

from portal import embedded


def pytest_sessionfinish(session, exitstatus):
    # Leave no embedded server behind that this test run started itself.
    embedded.stop_started()


@pytest.fixture
def user_with_role(db):
    """Make a staff user in the given role groups: user_with_role("support")."""
    from tests.factories import UserFactory

    def make(*roles: str, **kwargs):
        return UserFactory(roles=roles, **kwargs)

    return make
