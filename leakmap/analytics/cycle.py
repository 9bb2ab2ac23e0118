"""cycle: how long won deals take, per rep.

The contract names this report without a row format; ours is, per owner with won deals:
`owner, won, mean_days, median_days, p90_days` of (closed_at − created_at) in days over the
cohort's won deals (as of the clock; p90 is the nearest rank ceil(0.9 n)), ordered by owner, and
the body key `overall` with the same figures over all of them (`owner` null).
mean_days equals owners.avg_cycle_days for the same owner.

Two ways to the same figures (tests/analytics/test_sorted_cycles.py holds them equal):
- every won deal now (no filter, no --as-of) reads Deal.cycle_seconds, which the database
  computes, from indexes that keep it in order: per rep a window numbers each rep's deals in
  index order and keeps the rows at the wanted ranks; overall, a count and a walk to each rank
  (distributions.stats_from_sorted_cycles);
- any other scope makes one UNION ALL of (owner id, days) and (0, days) rows, so every median
  and p90 comes out of one sort (distributions.stats_by_sorting, base.grouped_stats).
distributions.won_cycles makes the choice.
Then the owners' names in one query.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    ReportResult,
    load_stages,
    register,
    usernames,
)
from leakmap.analytics.distributions import won_cycles
from leakmap.analytics.filters import Scope


@dataclass
class CycleRow:
    owner: str | None
    won: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None


@register("cycle")
def cycle(scope: Scope) -> ReportResult:
    stages = load_stages()
    stats, overall = won_cycles(scope, stages)
    names = usernames(stats)
    rows = sorted(
        (CycleRow(names[o][0], s.n, s.mean, s.median, s.p90) for o, s in stats.items()),
        key=lambda r: r.owner,
    )
    return ReportResult(
        report="cycle",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={
            "overall": CycleRow(
                None,
                overall.n if overall else 0,
                overall.mean if overall else None,
                overall.median if overall else None,
                overall.p90 if overall else None,
            )
        },
        title=_("Sales cycle of won deals"),
        columns=[
            Column("owner", _("Owner")),
            Column("won", _("Won"), "int", total=True),
            Column("mean_days", _("Mean days"), "days"),
            Column("median_days", _("Median days"), "days"),
            Column("p90_days", _("P90 days"), "days"),
        ],
    )
