"""Changes to one subscription: its QSR state (DOMAIN.md "Disabling, pausing and
disputing QSR") and scheduling its suspensions ("Suspensions and proration").

Each service locks the subscription row, checks the change against `QSR_TRANSITIONS`,
saves only the fields it changes with who and why for the history, and returns the
saved subscription (the caller's instance is left as it was). Repeating a change that
is already in place is a no-op and writes no history row.

Who may call them is decided by `portal.policy`: disabling QSR for a bug and
re-enabling it check the actor's role here, always (the portal's own jobs and tools act
as a `policy.SystemActor`; no actor at all is refused); a pause is applied by an approved
request (`approvals.services`), which checked its requester and approvers. Amending and
cancelling a subscription are in `lifecycle.py`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import cast

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from portal import policy
from portal.errors import DomainError
from subscriptions import billing
from subscriptions.models import Subscription, Suspension

from .history import history_user, save_with_reason

QsrState = Subscription.QsrState
LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)
# A CharField always has a max_length; the stubs allow None for any field.
URL_MAX_LENGTH = cast(int, Subscription._meta.get_field("qsr_bug_url").max_length)

# The allowed QSR changes, (from, to). Staying in the same state with the same details
# is a no-op and needs no entry; (paused, paused) moves the pause's end date.
# A bug disable does not replace a pause: that would silently drop a pause sales_ops
# approved, and re-enabling after the fix would then charge inside the agreed pause.
QSR_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (QsrState.ENABLED, QsrState.DISABLED_FOR_BUG),
        (QsrState.DISABLED_FOR_BUG, QsrState.ENABLED),
        (QsrState.ENABLED, QsrState.PAUSED),
        (QsrState.PAUSED, QsrState.PAUSED),
        (QsrState.PAUSED, QsrState.ENABLED),
    }
)


def check_url(value: str, *, field: str, what: str) -> None:
    if not value:
        raise DomainError(f"A link to {what} is required.", field=field)
    if len(value) > URL_MAX_LENGTH:
        raise DomainError(f"The link is longer than {URL_MAX_LENGTH} characters.", field=field)
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise DomainError(f"Enter a valid http(s) link to {what}.", field=field) from None


def _lock_live(subscription: Subscription) -> Subscription:
    sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if sub.status not in LIVE:
        raise DomainError(f"The subscription is {sub.get_status_display().lower()}.")
    return sub


def _qsr_change(
    sub: Subscription, *, to: str, values: dict, actor: policy.Actor, reason: str
) -> Subscription:
    """Move the locked `sub` to QSR state `to` with `values` (field -> new value); a
    no-op when both are in place already."""
    if sub.qsr_state == to and all(getattr(sub, f) == v for f, v in values.items()):
        return sub
    refusal = qsr_refusal(sub, to)
    if refusal is not None:
        raise DomainError(refusal)
    changes = {"qsr_state": to, **values, "qsr_changed_by": history_user(actor)}
    changes["qsr_changed_at"] = timezone.now()
    for field, value in changes.items():
        setattr(sub, field, value)
    save_with_reason(sub, list(changes), reason=reason, actor=actor)
    return sub


def qsr_refusal(sub: Subscription, to: str) -> str | None:
    """Why QSR of `sub` cannot move to `to` now (`QSR_TRANSITIONS`), or None if it can."""
    if (sub.qsr_state, to) in QSR_TRANSITIONS:
        return None
    if sub.qsr_state == QsrState.DISABLED_FOR_BUG:
        return (
            f"QSR is disabled for the bug {sub.qsr_bug_url}; re-enable it first "
            "(and disable it again to link another bug)."
        )
    if sub.qsr_state == QsrState.PAUSED:
        return f"QSR is paused until {sub.qsr_paused_until}; end the pause first."
    return f"QSR cannot go from {sub.get_qsr_state_display()} to {QsrState(to).label}."


def subscription_qsr_disable_for_bug(
    *, subscription: Subscription, bug_url: str, ticket_url: str, actor: policy.Actor
) -> Subscription:
    """Stop QSR charging because of a confirmed bug, until someone re-enables it."""
    policy.check(actor, policy.Action.QSR_DISABLE_FOR_BUG, subscription)
    check_url(bug_url, field="bug_url", what="the bug report")
    check_url(ticket_url, field="ticket_url", what="the ticket")
    with transaction.atomic():
        return _qsr_change(
            _lock_live(subscription),
            to=QsrState.DISABLED_FOR_BUG,
            values={"qsr_bug_url": bug_url, "qsr_ticket_url": ticket_url},
            actor=actor,
            reason="QSR disabled for a bug",
        )


def subscription_qsr_enable(*, subscription: Subscription, actor: policy.Actor) -> Subscription:
    """Turn QSR back on after a bug fix (support) or before a pause runs out (sales ops,
    who approved the pause)."""
    with transaction.atomic():
        sub = _lock_live(subscription)
        paused = sub.qsr_state == QsrState.PAUSED
        action = policy.Action.QSR_END_PAUSE if paused else policy.Action.QSR_ENABLE
        policy.check(actor, action, sub)
        if sub.qsr_state == QsrState.ENABLED:
            return sub  # whatever links are left on it, QSR is on: nothing to do
        # The links and the pause end described the state being left; the history keeps them.
        return _qsr_change(
            sub,
            to=QsrState.ENABLED,
            values={"qsr_bug_url": "", "qsr_ticket_url": "", "qsr_paused_until": None},
            actor=actor,
            reason=f"QSR re-enabled (was {sub.get_qsr_state_display().lower()})",
        )


def subscription_qsr_pause(
    *,
    subscription: Subscription,
    until: date | None,
    actor: policy.Actor,
    today: date | None = None,
) -> Subscription:
    """Pause QSR through `until` (inclusive; None: the last day of the term). Pausing
    again with another date moves the end of the pause."""
    today = today or timezone.localdate()
    with transaction.atomic():
        sub = _lock_live(subscription)
        last_day = sub.term_end - timedelta(days=1)
        end = until or last_day
        if not sub.term_start <= end <= last_day:
            raise DomainError(
                f"The pause must end within the term ({sub.term_start} to {last_day}).",
                field="until",
            )
        if end < today:
            raise DomainError(f"The pause cannot end before today ({today}).", field="until")
        return _qsr_change(
            sub,
            to=QsrState.PAUSED,
            values={"qsr_paused_until": end},
            actor=actor,
            reason=f"QSR paused until {end}",
        )


def suspension_schedule(
    *,
    subscription: Subscription,
    suspend_date: date,
    resume_date: date,
    mode: str,
    extend_term: bool,
    ticket_url: str,
    actor: policy.Actor,
    reason: str = "",
) -> Suspension:
    """Schedule a suspension of ``[suspend_date, resume_date)``; the nightly run starts
    and resumes it and writes its proration lines. Scheduling the same suspension again
    returns the one there is."""
    if mode not in Suspension.Mode.values:
        raise DomainError(
            f"Unknown suspension mode {mode!r}: expected one of "
            f"{', '.join(Suspension.Mode.values)}.",
            field="mode",
        )
    check_url(ticket_url, field="ticket_url", what="the ticket")
    # Freezes and free periods extend the term by definition (billing ignores the flag).
    extend_term = extend_term or mode != Suspension.Mode.CREDIT
    with transaction.atomic():
        sub = _lock_live(subscription)
        others = Suspension.objects.filter(subscription=sub).exclude(
            status=Suspension.Status.CANCELLED
        )
        same = others.filter(
            suspend_date=suspend_date, resume_date=resume_date, mode=mode, extend_term=extend_term
        ).first()
        if same:
            return same
        try:
            # The money module owns the rules on the dates; the lines are the nightly's job.
            billing.suspension_proration(
                mode=mode,
                charge=sub.seats * sub.annual_unit_price,
                currency=sub.currency,
                term_start=sub.term_start,
                term_end=sub.term_end,
                start=suspend_date,
                end=resume_date,
                extend_term=extend_term,
            )
        except billing.InvalidPeriod as exc:
            in_term = sub.term_start <= suspend_date < sub.term_end
            raise DomainError(str(exc), field="resume_date" if in_term else "suspend_date") from exc
        overlap = (
            others.filter(suspend_date__lt=resume_date, resume_date__gt=suspend_date)
            .order_by("suspend_date")
            .first()
        )
        if overlap:
            raise DomainError(
                f"Overlaps the {overlap.get_status_display().lower()} suspension from "
                f"{overlap.suspend_date} to {overlap.resume_date}.",
                field="suspend_date",
            )
        suspension = Suspension(
            subscription=sub,
            suspend_date=suspend_date,
            resume_date=resume_date,
            mode=mode,
            extend_term=extend_term,
            ticket_url=ticket_url,
            reason=reason,
        )
        # simple-history reads who and why off the instance on save.
        suspension._change_reason = "suspension scheduled"  # type: ignore[attr-defined]
        suspension._history_user = history_user(actor)  # type: ignore[attr-defined]
        suspension.save()
    return suspension
