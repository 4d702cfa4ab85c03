"""System checks of the subscriptions app's settings (``manage.py check`` and every
management command run them at start)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from subscriptions.billing import MAX_SEATS


def usage_bound_problem(value: object) -> str | None:
    """Why ``value`` cannot be USAGE_MAX_BILLABLE_USERS, or None when it can.

    Counts up to the bound reach the seats and max seats used that are priced; above
    billing.MAX_SEATS an amount could overflow the ledger's money columns.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return f"USAGE_MAX_BILLABLE_USERS must be a whole number, not {value!r}."
    if not 1 <= value <= MAX_SEATS:
        return (
            f"USAGE_MAX_BILLABLE_USERS is {value}; it must be from 1 to {MAX_SEATS} "
            "(billing.MAX_SEATS), or counts it lets in could overflow the money columns."
        )
    return None


@register()
def check_usage_max_billable_users(app_configs=None, **kwargs) -> list[Error]:
    problem = usage_bound_problem(getattr(settings, "USAGE_MAX_BILLABLE_USERS", None))
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="Set the environment variable USAGE_MAX_BILLABLE_USERS to a lower bound.",
            id="subscriptions.E001",
        )
    ]
