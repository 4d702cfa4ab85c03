"""`manage.py simulate SCENARIO.json` (or `-` for stdin)

Runs a scenario (one subscription and a timeline of events) through the real services
and nightly steps, day by day, in a transaction that is rolled back, and prints the
resulting ledger as JSON. The rules of the run (which nights, when events apply, what
the ledger leaves out) are in `subscriptions/simulation/__init__.py`. A bad scenario, or an
event a service refuses, exits with status 2 and prints only `path: problem` lines on
stderr, one per problem (the first 100); a problem of the file as a whole has the path
``scenario``.

A scenario::

    {"subscription": {"namespace_kind": "saas", "seats": 100, "annual_unit_price": "100.00",
                      "currency": "USD", "term_start": "2026-01-01",
                      "term_end": "2027-01-01", "channel": "direct", "payment": "card",
                      "program": null, "offline_license": false},
     "events": [{"date": "2026-02-10", "usage": 110},
                {"date": "2026-06-01", "suspend": {"resume": "2026-06-26",
                                                    "mode": "credit", "extend_term": true}},
                {"date": "2026-03-20", "disable_qsr_bug": "https://bugs.example/123"},
                {"date": "2026-07-01", "enable_qsr": true},
                {"date": "2026-05-01", "pause_qsr_until": "2026-12-31"}],
     "until": "2027-01-02"}

Optional keys and their defaults: ``namespace_kind`` saas, ``channel`` direct,
``payment`` card, ``program`` null, ``offline_license`` false, ``events`` [];
``suspend.mode`` credit (or freeze), ``suspend.extend_term`` false.
``pause_qsr_until`` null pauses through the last day of the term. The price is a string
(a JSON number would go through a float). One event kind per event; events of one
date apply in the order given. ``until`` is exclusive.

Limits: a UTF-8 file of at most 4 MiB; dates in the years 1900 to 2200; ``until`` at
most 1,830 nights after the term start; at most 10,000 events; seats and usage at most
1,000,000 and the price at most 999,999.99, so the ledger's amounts always fit
(`subscriptions/billing.py`, "Bounds"); NaN and Infinity are not numbers, a key given
twice is refused, and the bug link may hold no control characters.

The ledger::

    {"reconciliations": [{"quarter": 1, "date": "2026-04-01", "status": "processed",
                          "max_seats_used": 110, "overage": 10, "amount": "750.00",
                          "skip_reason": null}, ...],
     "invoices": [{"date": "2026-04-08", "total": "750.00",
                   "lines": [{"kind": "qsr_overage", "quantity": 10, "amount": "750.00",
                              "period_start": "2026-04-01", "period_end": "2027-01-01"}]},
                  ...],
     "subscription": {"seats": 110, "term_end": "2027-01-01", "status": "active",
                      "max_seats_used": 110}}
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

from django.core.management.base import BaseCommand, CommandError

from subscriptions.simulation import (
    MAX_SCENARIO_BYTES,
    TOO_LARGE,
    ScenarioError,
    SimulationFailed,
    decode_scenario,
    parse_scenario,
    run_scenario,
)

BAD_INPUT = 2
# Enough to fix a scenario by; a file of thousands of bad events would bury the first.
MAX_PROBLEMS_SHOWN = 100


class Command(BaseCommand):
    help = "Simulate a subscription's timeline with the real nightly engine; nothing is kept."
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("scenario", help="Scenario JSON file, or - to read stdin.")

    def handle(self, *args, **options):
        try:
            raw = self._read(options["scenario"], options.get("stdin") or sys.stdin)
            ledger = run_scenario(parse_scenario(decode_scenario(raw)))
        except ScenarioError as exc:
            self._refuse(exc.problems)
        except SimulationFailed as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(ledger, indent=2))

    def _read(self, name: str, stdin) -> bytes:
        """The scenario's bytes; never more than one byte past the size limit."""
        if name == "-":
            # The bytes, so that decode_scenario reports a bad encoding by its position.
            data = getattr(stdin, "buffer", stdin).read(MAX_SCENARIO_BYTES + 1)
            # A text stream (call_command's stdin) holds no encoding mistakes to report.
            return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        try:
            with open(name, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_SCENARIO_BYTES:
                    raise ScenarioError([TOO_LARGE])
                return f.read(MAX_SCENARIO_BYTES + 1)
        except OSError as exc:
            raise ScenarioError([f"scenario: cannot read {name}: {exc.strerror}"]) from exc

    def _refuse(self, problems: list[str]) -> NoReturn:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"scenario: {len(problems) - len(shown):,} more problems not shown")
        # BaseCommand.run_from_argv sets this attribute; the stubs do not declare it.
        if self._called_from_command_line:  # type: ignore[attr-defined]
            # Only the `path: problem` lines: a CommandError would come out prefixed with
            # its class name.
            for line in shown:
                self.stderr.write(line)
            sys.exit(BAD_INPUT)
        raise CommandError("\n".join(shown), returncode=BAD_INPUT)
