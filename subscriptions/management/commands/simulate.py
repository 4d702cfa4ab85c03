"""`manage.py simulate SCENARIO.json` (or `-` for stdin)

Runs a scenario (one subscription and a timeline of events) through the real services
and nightly steps, day by day, in a transaction that is rolled back, and prints the
resulting ledger as JSON. The rules of the run (which nights, when events apply, what
the ledger leaves out) are in `subscriptions/simulation.py`. A bad scenario, or an
event a service refuses, exits with status 2 and one `path: problem` line per problem.

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
import sys

from django.core.management.base import BaseCommand, CommandError

from subscriptions.simulation import (
    ScenarioError,
    SimulationFailed,
    parse_scenario,
    run_scenario,
)

BAD_INPUT = 2


class Command(BaseCommand):
    help = "Simulate a subscription's timeline with the real nightly engine; nothing is kept."
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("scenario", help="Scenario JSON file, or - to read stdin.")

    def handle(self, *args, **options):
        text = self._read(options["scenario"], options.get("stdin") or sys.stdin)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"scenario: not valid JSON: {exc}", returncode=BAD_INPUT) from exc
        try:
            ledger = run_scenario(parse_scenario(data))
        except ScenarioError as exc:
            raise CommandError("\n".join(exc.problems), returncode=BAD_INPUT) from exc
        except SimulationFailed as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(ledger, indent=2))

    def _read(self, name: str, stdin) -> str:
        if name == "-":
            return stdin.read()
        try:
            with open(name, encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            message = f"scenario: cannot read {name}: {exc.strerror}"
            raise CommandError(message, returncode=BAD_INPUT) from exc
