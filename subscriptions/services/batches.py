"""How the nightly steps work through their records: in bounded batches, each one
transaction, with one bad record never holding up the others.

A batched step is three plain functions: which ids are due, the work on one batch, and
what to record when a record fails. The nightly run either works the batches itself
(`BatchedStep.run`) or fans them out to workers (`subscriptions.services.fanout`), with
the same functions either way.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar

from django.db.models import QuerySet

from portal.policy import Actor

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000

_QS = TypeVar("_QS", bound=QuerySet[Any])

OnBatch = Callable[[int], None]
# Subscription ids a run is limited to (a simulation), or None for the whole book.
Only = Sequence[int] | None


def only_these(queryset: _QS, only: Only, field: str = "subscription_id") -> _QS:
    """`queryset` limited to the subscriptions of `only` (through `field`), if given."""
    return queryset if only is None else queryset.filter(**{f"{field}__in": only})


def chunks(ids: Sequence[int], size: int | None = None) -> Iterable[Sequence[int]]:
    size = size or BATCH_SIZE
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def each_batch(
    ids: Sequence[int],
    work: Callable[[Sequence[int]], Counter[str]],
    *,
    fail: Callable[[int, Exception], None],
    on_batch: OnBatch | None = None,
    size: int | None = None,
) -> Counter[str]:
    """Run `work` (one transaction) over `ids` in batches. One bad record must not hold
    up the others: a batch that raises is redone one record at a time, and each record
    that still fails is handed to `fail` and counted as `failed`, while the rest of the
    batch, and every later batch, goes through."""
    counts: Counter[str] = Counter()
    for batch in chunks(ids, size):
        try:
            counts += work(batch)
        except Exception as exc:
            if len(batch) > 1:
                logger.exception("batch of %d failed; retrying one by one", len(batch))
                counts += each_batch(batch, work, fail=fail, size=1)
            else:
                logger.error("record %s failed: %s", batch[0], exc)
                counts["failed"] += 1
                fail(batch[0], exc)
        if on_batch:
            on_batch(len(batch))
    return counts


Errors = list[dict[str, Any]] | None


@dataclass(frozen=True)
class BatchedStep:
    """One nightly step that works in batches.

    - `due(run_date, only)`: the ids to work on, in order;
    - `work(batch, run_date=, actor=)`: one batch, in one transaction; returns counts;
    - `fail(errors, actor, pk, exc)`: record a record that failed alone;
    - `tail(run_date=, actor=, only=)`: what the step does once all batches are done.
    """

    name: str
    due: Callable[[date, Only], list[int]]
    work: Callable[..., Counter[str]]
    fail: Callable[[Errors, Actor, int, Exception], None]
    size: int | None = None
    tail: Callable[..., Counter[str]] | None = None

    def batch(
        self, ids: Sequence[int], *, run_date: date, actor: Actor, errors: Errors
    ) -> Counter[str]:
        """Work one batch of ids, isolating the records that fail."""
        return each_batch(
            ids,
            partial(self.work, run_date=run_date, actor=actor),
            fail=partial(self.fail, errors, actor),
            size=len(ids) or None,
        )

    def run(
        self,
        *,
        run_date: date,
        actor: Actor,
        on_batch: OnBatch | None = None,
        errors: Errors = None,
        only: Only = None,
    ) -> Counter[str]:
        """The whole step in this process."""
        counts = each_batch(
            self.due(run_date, only),
            partial(self.work, run_date=run_date, actor=actor),
            fail=partial(self.fail, errors, actor),
            on_batch=on_batch,
            size=self.size,
        )
        if self.tail:
            counts += self.tail(run_date=run_date, actor=actor, only=only)
        return counts
