"""The demo's usage: a year of daily billable users per namespace."""

from __future__ import annotations

import random

USAGE_DAYS = 365


def usage_series(rng: random.Random, seats: int, days: int) -> list[int]:
    """Daily billable users: a drift (growth or shrink), weekend dips, a layoff or two."""
    level = seats * rng.uniform(0.8, 1.0)
    yearly_growth = rng.choice([-0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    daily = (1 + yearly_growth) ** (1 / 365)
    dips = {rng.randrange(days): rng.uniform(0.7, 0.95) for _ in range(rng.randrange(3))}
    series = []
    for day in range(days):
        level *= daily * rng.uniform(0.995, 1.005)
        level *= dips.get(day, 1.0)
        weekend = 0.97 if day % 7 in (5, 6) else 1.0
        series.append(max(0, round(level * weekend)))
    return series
