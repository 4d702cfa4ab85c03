"""Account ownership: the sales manager of a customer.

`Customer.owner` says whom disputes are routed to; the django-guardian object permission
`own_customer` is what lets that manager see and act on the account. This service keeps
the two in step: whoever was the owner before loses the permission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from portal import policy
from portal.errors import DomainError
from portal.roles import SALES
from subscriptions.models import Customer
from subscriptions.services.history import save_with_reason

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PERMISSION = "own_customer"


def customer_assign_owner(
    *, customer: Customer, owner: User | None, actor: policy.Actor
) -> Customer:
    """Make `owner` (a sales user, or None) the account's sales manager."""
    policy.check(actor, policy.Action.ASSIGN_OWNER, customer)
    if owner is not None and (not owner.is_active or SALES not in policy.roles_of(owner)):
        raise DomainError(f"{owner} is not an active sales manager.", field="owner")
    with transaction.atomic():
        # Only the customer row: PostgreSQL cannot lock the nullable side of the owner join.
        c = (
            Customer.objects.select_for_update(of=("self",))
            .select_related("owner")
            .get(pk=customer.pk)
        )
        previous = c.owner
        if previous is not None and previous != owner:
            remove_perm(PERMISSION, previous, c)
        if owner is not None:
            assign_perm(PERMISSION, owner, c)  # a no-op when held already
        if previous != owner:
            c.owner = owner
            save_with_reason(
                c,
                ["owner"],
                reason=f"sales manager: {previous or '—'} -> {owner or '—'}",
                actor=actor,
            )
        return c
