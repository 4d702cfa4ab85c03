"""Who may do what: the one place that answers "may this user do this action on this
object?" for the whole portal (DOMAIN.md "Who uses the portal").

Roles are Django groups. Account ownership is a django-guardian object permission
(`subscriptions.own_customer`) on the customer: a sales manager sees and acts on the
customers they own and what hangs off them, and nothing else. Every other role sees
every account.

Services call `check()` before they change anything, so the admin, commands and any later
API obey the same rules; the admin calls `may()` to decide which buttons to show and
`visible()` to filter its lists. The rules that depend on the state of one request
(separation of duties, an open slot) are here too, so a button never offers what the
service would refuse.

Every service names who acts: a user, or `SYSTEM` (a `SystemActor`) for the portal's own
jobs and tools. `check(None, ...)` refuses, so a caller that forgot its actor fails
loudly instead of skipping the policy. A `SystemActor` is never a user: nothing a web
request carries can be one, and it may do every action.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Model, QuerySet
from django.db.models.functions import Cast
from guardian.models import GroupObjectPermission, UserObjectPermission

from portal.roles import (
    DEAL_DESK,
    EXECUTIVE,
    FINANCE,
    SALES,
    SALES_OPS,
    SUPPORT,
    SUPPORT_MANAGER,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# The account model, by label: the policy sits below the apps and imports none of them.
CUSTOMER_MODEL = "subscriptions.Customer"
OWN_CUSTOMER = "subscriptions.own_customer"


@dataclass(frozen=True)
class SystemActor:
    """The portal itself acting (the nightly jobs, a simulation), not a person. It has no
    login and no database row: history rows it writes have no user. The attributes below
    make anything that expects a user treat it as an anonymous one."""

    name: str

    is_authenticated = False
    is_active = False
    is_superuser = False
    is_staff = False
    pk = None

    def __str__(self) -> str:
        return f"system ({self.name})"


SYSTEM = SystemActor("nightly")

# Who a service acts for. A string so that annotations need no import of the user model.
Actor: TypeAlias = "AbstractBaseUser | SystemActor"


class Action(StrEnum):
    VIEW = "view"
    QSR_DISABLE_FOR_BUG = "qsr_disable_for_bug"
    QSR_ENABLE = "qsr_enable"
    QSR_END_PAUSE = "qsr_end_pause"
    RECORD_DISPUTE = "record_dispute"
    RESOLVE_DISPUTE = "resolve_dispute"
    REQUEST_PAUSE = "request_pause"
    REQUEST_RESET = "request_reset"
    REQUEST_REFUND = "request_refund"
    REQUEST_FREE_PERIOD = "request_free_period"
    DECIDE = "decide"  # approve or reject, filling one slot of a request
    CANCEL_REQUEST = "cancel_request"
    EXECUTE_RESET = "execute_reset"
    PROCESS_REFUND = "process_refund"
    ASSIGN_OWNER = "assign_owner"  # name an account's sales manager
    AMEND_SUBSCRIPTION = "amend_subscription"  # terms, channel, price, seats, ...
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    EXPORT = "export"  # a list as CSV: the rows the user sees, nothing more


_SUPPORT = {
    Action.VIEW,
    Action.QSR_DISABLE_FOR_BUG,
    Action.QSR_ENABLE,
    Action.RECORD_DISPUTE,
    Action.REQUEST_RESET,
    Action.REQUEST_REFUND,
    Action.EXECUTE_RESET,
    Action.CANCEL_REQUEST,
}

# What each role may do. Approvers may decide only the slots their role fills (SLOTS).
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    SUPPORT: frozenset(_SUPPORT),
    SUPPORT_MANAGER: frozenset(_SUPPORT | {Action.DECIDE}),
    SALES: frozenset(
        {
            Action.VIEW,
            Action.REQUEST_PAUSE,
            Action.REQUEST_RESET,
            Action.REQUEST_REFUND,
            Action.REQUEST_FREE_PERIOD,
            Action.RESOLVE_DISPUTE,
            Action.CANCEL_REQUEST,
            Action.EXPORT,
        }
    ),
    # Sales ops is the commercial desk: it also amends and cancels subscriptions.
    SALES_OPS: frozenset(
        {
            Action.VIEW,
            Action.DECIDE,
            Action.QSR_END_PAUSE,
            Action.ASSIGN_OWNER,
            Action.AMEND_SUBSCRIPTION,
            Action.CANCEL_SUBSCRIPTION,
            Action.EXPORT,
        }
    ),
    DEAL_DESK: frozenset({Action.VIEW, Action.PROCESS_REFUND, Action.EXPORT}),
    EXECUTIVE: frozenset({Action.VIEW, Action.DECIDE}),
    FINANCE: frozenset({Action.VIEW, Action.DECIDE, Action.EXPORT}),
}
# Roles that act only on the accounts they own.
OWNER_SCOPED_ROLES = frozenset({SALES})

# Approval slots: the roles whose approval fills each.
SLOT_SALES_OPS = "sales_ops"
SLOT_SMALL_RESET = "sales_ops_or_support_manager"
SLOT_EXECUTIVE = "executive"
SLOT_FINANCE = "finance"
SLOTS: dict[str, frozenset[str]] = {
    SLOT_SALES_OPS: frozenset({SALES_OPS}),
    SLOT_SMALL_RESET: frozenset({SALES_OPS, SUPPORT_MANAGER}),
    SLOT_EXECUTIVE: frozenset({EXECUTIVE}),
    SLOT_FINANCE: frozenset({FINANCE}),
}
SLOT_LABELS = {
    SLOT_SALES_OPS: "Sales ops",
    SLOT_SMALL_RESET: "Sales ops or support manager",
    SLOT_EXECUTIVE: "Executive",
    SLOT_FINANCE: "Finance",
}
FREE_PERIOD_EXECUTIVE_ABOVE_DAYS = 30


class NotAllowed(PermissionDenied):
    """The user's role or relation to the record does not allow the action (HTTP 403)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# --- Who the user is ------------------------------------------------------------------


def roles_of(user) -> frozenset[str]:
    """The user's role names; read once per user object."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_roles = cached
    return cached


def _is_superuser(user) -> bool:
    return bool(user is not None and user.is_active and user.is_superuser)


def _actions_of(user) -> set[Action]:
    if _is_superuser(user):
        return set(Action)
    return {action for role in roles_of(user) for action in ROLE_ACTIONS.get(role, ())}


def sees_every_account(user) -> bool:
    return _is_superuser(user) or any(r not in OWNER_SCOPED_ROLES for r in roles_of(user))


# --- What the user may see ------------------------------------------------------------


def owned_customer_ids(user) -> QuerySet:
    """The ids of the customers `user` owns: the object permission held by the user or
    by one of their groups, as `get_objects_for_user` reads it, but written so that
    PostgreSQL can size it (object ids cast to numbers, the two sources united rather
    than OR-ed): a list over a million rows then starts from the few accounts owned
    instead of testing every row against the permission table."""
    Customer = apps.get_model(CUSTOMER_MODEL)
    codename = OWN_CUSTOMER.partition(".")[2]
    held = {
        "permission__codename": codename,
        "permission__content_type": ContentType.objects.get_for_model(Customer),
    }
    as_id = Cast("object_pk", output_field=BigIntegerField())
    by_user = UserObjectPermission.objects.filter(user=user, **held)
    by_group = GroupObjectPermission.objects.filter(group__user=user, **held)
    return (
        by_user.annotate(customer_id=as_id)
        .values("customer_id")
        .union(by_group.annotate(customer_id=as_id).values("customer_id"))
    )


def visible_customers(user) -> QuerySet:
    Customer = apps.get_model(CUSTOMER_MODEL)
    if not _actions_of(user):
        return Customer.objects.none()
    if sees_every_account(user):
        return Customer.objects.all()
    return Customer.objects.filter(pk__in=owned_customer_ids(user))


def visible(queryset: QuerySet, user, *, customer_path: str) -> QuerySet:
    """`queryset` narrowed to the accounts `user` may see. `customer_path` leads from the
    model to its customer ("pk" for customers themselves). One subquery, no extra query
    per row."""
    if sees_every_account(user):
        return queryset if _actions_of(user) else queryset.none()
    lookup = "pk__in" if customer_path == "pk" else f"{customer_path}__in"
    if not _actions_of(user):
        return queryset.none()
    return queryset.filter(**{lookup: owned_customer_ids(user)})


def customer_of(obj: Model):
    """The account a record belongs to."""
    Customer = apps.get_model(CUSTOMER_MODEL)
    if isinstance(obj, Customer):
        return obj
    for path in ("customer", "subscription", "reconciliation", "request", "namespace"):
        if hasattr(obj, path):
            return customer_of(getattr(obj, path))
    raise TypeError(f"{type(obj).__name__} has no account")


def owns(user, obj: Model) -> bool:
    return bool(user is not None and user.has_perm(OWN_CUSTOMER, customer_of(obj)))


# --- What the user may do -------------------------------------------------------------


def _role_allows(user, action: Action, obj: Model | None) -> bool:
    granting = {r for r in roles_of(user) if action in ROLE_ACTIONS.get(r, ())}
    if _is_superuser(user):
        return True
    if not granting:
        return False
    if obj is None or granting - OWNER_SCOPED_ROLES:
        return True
    return owns(user, obj)


def slots_for(user, request) -> list[str]:
    """The open slots of `request` that `user` may fill now (none when they requested it
    or have decided on it already). Uses `request.decisions` (prefetch it in lists)."""
    if request.requester_id == user.pk:
        return []
    decisions = list(request.decisions.all())
    if any(d.approver_id == user.pk for d in decisions):
        return []
    filled = {d.slot for d in decisions}
    mine = roles_of(user) | (set().union(*SLOTS.values()) if _is_superuser(user) else set())
    return [s for s in request.required_slots if s not in filled and SLOTS.get(s, set()) & mine]


def why_not(user, action: Action, obj: Model | None = None) -> str | None:
    """None when `user` may do `action` on `obj`; otherwise the reason, for the user."""
    if user is None:
        return (
            f"No actor given for “{action}”: a service needs the user it acts for, or "
            "policy.SYSTEM for the portal's own jobs."
        )
    if isinstance(user, SystemActor):
        return None
    if not _role_allows(user, action, obj):
        if action in _actions_of(user):
            return "This account belongs to another sales manager."
        return "Your role does not allow this."
    # An approval request, recognised by its slots: the policy imports no app's model.
    request: Any = obj if getattr(obj, "required_slots", None) is not None else None
    if request is None:
        return None
    if action == Action.DECIDE:
        if request.requester_id == user.pk:
            return "Nobody approves their own request."
        if any(d.approver_id == user.pk for d in request.decisions.all()):
            return "You have decided on this request already; one person fills one slot."
        if not slots_for(user, request):
            return "No open approval slot of this request is for your role."
    if action == Action.CANCEL_REQUEST and request.requester_id != user.pk:
        return "Only the requester can cancel a request."
    if action in (Action.PROCESS_REFUND, Action.EXECUTE_RESET) and request.requester_id == user.pk:
        return "Whoever requested a change does not execute it."
    return None


def may(user, action: Action, obj: Model | None = None) -> bool:
    return why_not(user, action, obj) is None


def check(user, action: Action, obj: Model | None = None) -> None:
    """Raise NotAllowed unless `user` may do `action` on `obj`."""
    reason = why_not(user, action, obj)
    if reason is not None:
        raise NotAllowed(reason)


# --- Who must approve -----------------------------------------------------------------


def finance_threshold(currency: str) -> Decimal:
    return settings.APPROVAL_FINANCE_THRESHOLD[currency]


def required_slots(
    kind: str, *, seats: int, amount: Decimal, currency: str, days: int | None = None
) -> list[str]:
    """The approval slots a request needs (DOMAIN.md "Max seats reset", "QSR refund",
    "Disabling, pausing", "Suspensions": free period)."""
    at_finance = amount >= finance_threshold(currency)
    if kind == "max_seats_reset":
        if seats <= settings.APPROVAL_SEAT_THRESHOLD:
            slots = [SLOT_SMALL_RESET]
        else:
            slots = [SLOT_SALES_OPS, SLOT_EXECUTIVE]
        return [*slots, SLOT_FINANCE] if at_finance else slots
    if kind == "qsr_refund":
        return [SLOT_SALES_OPS, SLOT_FINANCE] if at_finance else [SLOT_SALES_OPS]
    if kind == "free_period":
        if days is not None and days > FREE_PERIOD_EXECUTIVE_ABOVE_DAYS:
            return [SLOT_SALES_OPS, SLOT_EXECUTIVE]
        return [SLOT_SALES_OPS]
    if kind == "qsr_pause":
        return [SLOT_SALES_OPS]
    raise ValueError(f"unknown request kind {kind!r}")


def approvers_for_slot(slot: str) -> QuerySet:
    """Active users who could fill `slot`."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=SLOTS[slot])
        .distinct()
        .order_by("username")
    )
