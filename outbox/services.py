"""Writing emails to the outbox, and sending what it holds.

`outbox_add` is called inside the transaction of the change that causes the emails, and
asks a worker to send them once that transaction commits. `outbox_send_due` sends every
message that is due, each on its own: it claims a few at a time (a short transaction,
`SKIP LOCKED`, so workers never share a message), then sends each and records it as sent
at once. A message that fails is retried later with a growing wait, without resending
the others; one that keeps failing is given up after MAX_ATTEMPTS and shows as failed in
the admin. A sender killed mid-way leaves its claimed messages to the next sender once
the claim runs out (CLAIM_SECONDS): only the one message it was handing to the mail
server when it died can go out twice.

A message is recorded with its text (`outbox_add`), or by reference to the record it is
about (`outbox_add_refs`, one statement for a whole nightly batch), its text then written
when it is sent by the renderer its kind names in settings.OUTBOX_RENDERERS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import DateTimeField, Func
from django.utils.module_loading import import_string

from outbox.models import OutboxMessage

MAX_ATTEMPTS = 5
CLAIM_SECONDS = 300
CLAIM_SIZE = 100
# Wait before attempt n + 1 after n failed ones.
RETRY_AFTER = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)


@dataclass(frozen=True)
class Mail:
    key: str
    kind: str
    subject: str
    body: str
    to: Sequence[str]
    from_email: str = ""


def outbox_add(mails: Sequence[Mail]) -> int:
    """Record `mails` in the caller's transaction (a key already there is left alone)
    and, once it commits, ask a worker to send them. Returns how many were new."""
    rows = [
        OutboxMessage(
            key=mail.key[:200],
            kind=mail.kind,
            subject=mail.subject[:300],
            body=mail.body,
            from_email=mail.from_email,
            to=sorted(set(mail.to)),
        )
        for mail in mails
        if mail.to
    ]
    if not rows:
        return 0
    created = OutboxMessage.objects.bulk_create(rows, ignore_conflicts=True)
    # robust: the change has committed; a broker that is down must not turn it into an
    # error. The sweep sends what this request could not hand over.
    transaction.on_commit(_request_sending, robust=True)
    return len(created)


_ADD_REFS = """
INSERT INTO {table} (key, kind, object_id, subject, body, from_email, "to", status,
                     attempts, last_error, created_at)
SELECT %(kind)s || ':' || v.id, %(kind)s, v.id, '', '', '', ARRAY[v.email], 'pending',
       0, '', now()
FROM unnest(%(ids)s::bigint[], %(emails)s::varchar[]) AS v(id, email)
WHERE v.email <> ''
ON CONFLICT (key) DO NOTHING
"""


def outbox_add_refs(*, kind: str, refs: Sequence[tuple[int, str]]) -> int:
    """Record one message of `kind` per (record id, address) in the caller's
    transaction, keyed by kind and record (a record already there is left alone); its
    text is rendered when it is sent. Returns how many were new."""
    if not refs:
        return 0
    ids, emails = zip(*refs, strict=True)
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            _ADD_REFS.format(table=table),
            {"kind": kind, "ids": list(ids), "emails": list(emails)},
        )
        created = cursor.rowcount
    transaction.on_commit(_request_sending, robust=True)
    return created


# How to ask a worker to send: the outbox task's `delay`, set when the app is ready
# (apps.py), so that this module does not import the task module that imports it.
hand_over: Callable[[], object] | None = None


def _request_sending() -> None:
    if hand_over is not None:
        hand_over()


_CLAIM = """
UPDATE {table} m SET claimed_until = clock_timestamp() + make_interval(secs => %(hold)s),
                     attempts = m.attempts + 1
WHERE m.id IN (
    SELECT id FROM {table}
    WHERE status = 'pending'
      AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
      AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp())
    ORDER BY id
    LIMIT %(size)s
    FOR UPDATE SKIP LOCKED
)
RETURNING m.id, m.subject, m.body, m.from_email, m.to, m.attempts, m.kind, m.object_id
"""


def _claim(size: int) -> list[tuple]:
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM.format(table=table), {"hold": CLAIM_SECONDS, "size": size})
        return sorted(cursor.fetchall())


def outbox_send_due(*, limit: int | None = None) -> Counter[str]:
    """Send the messages that are due (at most `limit`); returns counts by outcome."""
    counts: Counter[str] = Counter()
    mail_connection = get_connection()
    try:
        while limit is None or counts.total() < limit:
            size = CLAIM_SIZE if limit is None else min(CLAIM_SIZE, limit - counts.total())
            claimed = _claim(size)
            if not claimed:
                break
            texts = _render(claimed)
            for pk, subject, body, from_email, to, attempts, kind, object_id in claimed:
                if not subject:
                    subject, body = texts.get((kind, object_id), ("", ""))
                if not subject:
                    missing = LookupError(f"nothing to send: {kind} {object_id} has no text")
                    counts[_record_failure(pk, MAX_ATTEMPTS, missing)] += 1
                    continue
                message = EmailMessage(
                    subject=subject,
                    body=body,
                    from_email=from_email or settings.DEFAULT_FROM_EMAIL,
                    to=to,
                    connection=mail_connection,
                )
                try:
                    message.send()
                except Exception as exc:  # the mail server's refusal, whatever its type
                    counts[_record_failure(pk, attempts, exc)] += 1
                else:
                    _record_sent(pk)
                    counts["sent"] += 1
    finally:
        mail_connection.close()
    return counts


def _render(claimed: list[tuple]) -> dict[tuple[str, int], tuple[str, str]]:
    """The texts of the claimed messages recorded by reference, by (kind, record)."""
    wanted: dict[str, list[int]] = {}
    for _, subject, _, _, _, _, kind, object_id in claimed:
        if not subject and object_id is not None:
            wanted.setdefault(kind, []).append(object_id)
    texts: dict[tuple[str, int], tuple[str, str]] = {}
    for kind, ids in wanted.items():
        renderer = settings.OUTBOX_RENDERERS.get(kind)
        if renderer:
            for object_id, text in import_string(renderer)(ids).items():
                texts[kind, object_id] = text
    return texts


def _record_sent(pk: int) -> None:
    OutboxMessage.objects.filter(pk=pk).update(
        status=OutboxMessage.Status.SENT,
        sent_at=_Clock(),
        claimed_until=None,
        last_error="",
    )


def _record_failure(pk: int, attempts: int, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if attempts >= MAX_ATTEMPTS:
        OutboxMessage.objects.filter(pk=pk).update(
            status=OutboxMessage.Status.FAILED, claimed_until=None, last_error=error
        )
        return "failed"
    wait = RETRY_AFTER[min(attempts, len(RETRY_AFTER)) - 1]
    OutboxMessage.objects.filter(pk=pk).update(
        claimed_until=None, next_attempt_at=_Clock() + wait, last_error=error
    )
    return "retry_later"


class _Clock(Func):
    """clock_timestamp(): the wall clock inside the UPDATE itself (not the transaction's
    start, which `now()` gives), so claims and retries are about real time and no query is
    spent asking for the time."""

    function = "clock_timestamp"
    template = "clock_timestamp()"
    output_field = DateTimeField()


def outbox_retry(*, message_ids: Sequence[int]) -> int:
    """Put failed messages back in the queue (an operator, after fixing the cause)."""
    updated = OutboxMessage.objects.filter(
        pk__in=message_ids, status=OutboxMessage.Status.FAILED
    ).update(status=OutboxMessage.Status.PENDING, attempts=0, next_attempt_at=None)
    if updated:
        transaction.on_commit(_request_sending, robust=True)
    return updated
