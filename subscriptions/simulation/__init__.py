"""Preview what the nightly engine does to one subscription: `manage.py simulate`.

A scenario is one subscription and a timeline of events, as JSON (the format, with its
optional keys, is in `subscriptions/management/commands/simulate.py`). Reading a
scenario never touches the database; only running it does:

- `scenario.py`: what a scenario is once read (`Scenario`, `Event`), its limits, and
  `ScenarioError`, which lists its problems as ``path: what is wrong``.
- `reading.py`: a scenario file's bytes to a JSON value (`decode_scenario`).
- `parsing.py`: that value checked and typed into a `Scenario` (`parse_scenario`).
- `run.py`: the scenario run night by night and rolled back (`run_scenario`), and the
  ledger it returns.

Rules of the run:

- The nightly run (`nightly_run`, every step, the real code) runs once for each date in
  ``[term_start, until)``: ``until`` is exclusive like every period end in the portal,
  so ``until`` = term end + 1 day includes the renewal night. (`run_nightly --until` is
  inclusive; a scenario is a period, a backfill a list of nights.)
- Events may come in any order. On its date each is applied through the real services
  before that night's run; events of one date in the order given. A ``suspend`` is
  scheduled on its date, so that night's run starts it.
- Usage: each day gets one seat usage report before the night's run, with the billable
  users of the latest ``usage`` event so far (the purchased seats before the first).
- The subscription starts paid: the invoice of its first term is not written, so the
  ledger shows only what the run adds (QSR, prorations, true-ups, renewal invoices).
- Everything happens in one transaction that is rolled back at the end, with its own
  customer and namespace (unique names): nothing is kept and no email leaves (they are
  sent on commit). The nightly steps also see the real subscriptions while they run,
  but only the simulated one is reported, and the rollback undoes the rest.
"""

from subscriptions.simulation.parsing import parse_scenario
from subscriptions.simulation.reading import TOO_LARGE, decode_scenario
from subscriptions.simulation.run import SimulationFailed, run_scenario
from subscriptions.simulation.scenario import MAX_SCENARIO_BYTES, Event, Scenario, ScenarioError

__all__ = [
    "MAX_SCENARIO_BYTES",
    "TOO_LARGE",
    "Event",
    "Scenario",
    "ScenarioError",
    "SimulationFailed",
    "decode_scenario",
    "parse_scenario",
    "run_scenario",
]
