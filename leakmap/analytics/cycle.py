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
  (stats_from_sorted_cycles: ~55 ms at a million leads);
- any other scope makes one UNION ALL of (owner id, days) and (0, days) rows, so every median
  and p90 comes out of one sort (stats_by_sorting, base.grouped_stats).
Then the owners' names in one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from django.db.models import F, Value
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    DaysBetween,
    ReportResult,
    Stats,
    deal_states,
    every_deal_now,
    grouped_stats,
    load_stages,
    plain_rows,
    register,
    stats_at_ranks,
    usernames,
    won_cycle_stats,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import Deal

ALL = 0  # not a user id (they start at 1), so it cannot collide with an owner's group


@dataclass
class CycleRow:
    owner: str | None
    won: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None


def stats_by_sorting(scope: Scope, stages) -> tuple[dict[int, Stats], Stats | None]:
    """Any scope: every won deal's days, per owner and overall, sorted once."""
    won = deal_states(scope, stages).filter(won_q(stages))
    v = DaysBetween(F("st_closed"), F("created_at"))
    stats = grouped_stats(
        [
            won.annotate(g=F("owner_id"), v=v).values("g", "v"),
            won.annotate(g=Value(ALL), v=v).values("g", "v"),
        ]
    )
    return stats, stats.pop(ALL, None)


def stats_from_sorted_cycles(stages) -> tuple[dict[int, Stats], Stats | None]:
    """Every won deal now: the won deals' seconds to close in (owner, seconds) order, walked
    from the deal_cycle_by_owner index without a sort, and each rep's ranks picked from their
    run of it here; the overall figures from base.won_cycle_stats.

    One plain read: a window numbering each rep's deals in SQL took ~125 ms at a million leads
    (58k won deals), this ~40 ms — fetching the bare numbers costs less than SQLite's window
    bookkeeping."""
    stats: dict[int, Stats] = {}
    rows = plain_rows(
        Deal.objects.filter(stage_id__in=stages.won_ids, cycle_seconds__isnull=False)
        .values_list("owner_id", "cycle_seconds")
        .order_by("owner_id", "cycle_seconds")
    )
    for owner_id, run in groupby(rows, key=itemgetter(0)):
        seconds = [s for _owner, s in run]
        stats[owner_id] = stats_at_ranks(
            len(seconds), sum(seconds), lambda rank, s=seconds: s[rank - 1] / 86400
        )
    return stats, won_cycle_stats(stages)


@register("cycle")
def cycle(scope: Scope) -> ReportResult:
    stages = load_stages()
    if every_deal_now(scope):
        stats, overall = stats_from_sorted_cycles(stages)
    else:
        stats, overall = stats_by_sorting(scope, stages)
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
