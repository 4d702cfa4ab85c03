"""Bench environment: the database the bench may wipe, chosen before django.setup().

`configure_environment` points Django at a database of the bench's own (and refuses one
whose name does not contain "bench"), and sets the settings the bench runs with: dev
settings, DEBUG off, the locmem email backend. bench/nightly.py and
bench/usage_memory.py call it first.
"""

from __future__ import annotations

import argparse
import os
import sys

BENCH_DB_NAME = "portal_bench"


# -- environment (before django.setup) -------------------------------------------------


def create_database_if_missing(url: str) -> None:
    """Create the bench's database on the named server the first time, as the embedded
    server's is: a fresh machine needs no manual step before a bench."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    params = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))


def configure_environment(args: argparse.Namespace) -> str:
    """Point Django at a database of the bench's own; return a description of it.

    Without DATABASE_URL the embedded server gets a separate database (PORTAL_DB_NAME).
    With DATABASE_URL set, the bench refuses to run unless told explicitly which
    database it may wipe (--database-url or BENCH_DATABASE_URL, whose name must contain
    "bench").
    """
    explicit = args.database_url or os.environ.get("BENCH_DATABASE_URL")
    if os.environ.get("DATABASE_URL") and not explicit:
        sys.exit(
            "bench: DATABASE_URL is set and the bench wipes the database it uses.\n"
            "Name a database for the bench explicitly with --database-url (or "
            "BENCH_DATABASE_URL), e.g. postgres://user@host:5432/portal_bench, or unset "
            "DATABASE_URL to use the embedded PostgreSQL."
        )
    if explicit:
        import dj_database_url

        name = dj_database_url.parse(explicit).get("NAME") or ""
        if "bench" not in name.lower():
            sys.exit(
                f"bench: refusing to wipe database {name!r}: the bench only runs on a "
                "database whose name contains 'bench'."
            )
        os.environ["DATABASE_URL"] = explicit
        create_database_if_missing(explicit)
        where = f"database {name!r} ({'--database-url' if args.database_url else 'env'})"
    else:
        if "bench" not in os.environ.get("PORTAL_DB_NAME", "").lower():
            os.environ["PORTAL_DB_NAME"] = BENCH_DB_NAME
        where = f"embedded PostgreSQL, database {os.environ['PORTAL_DB_NAME']!r}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings.dev"
    # 100k notices must not be written as files, and DEBUG would keep every query.
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["DEBUG"] = "0"
    # The bench prints its own table: a log line per request or nightly step would bury it.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not getattr(args, "workers", None):
        # In-process nights need no broker; do not start the embedded Redis for nothing.
        os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    from portal import embedded

    embedded.start_needed()  # what the environment names no server for
    return where
