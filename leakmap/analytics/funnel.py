"""funnel: leads → deals → each open stage reached → won (CONTRACT §4).

Intuition: one pass over the cohort's deals with a filtered COUNT/SUM per step, where "reached S"
is the per-deal fact `st_reached >= S.order` (skipping a stage counts as passing it); leads are one
COUNT. Queries: stages, leads count, deals aggregate, then the medians.

Beside the contract's columns, `median_days` per step: the median of days from each reaching
deal's creation to its first history entry into the step or any later non-lost stage (0 for a
deal without history: it counts as having been there since creation); for `won`, days to its
close. An entry that first takes a deal past an order keeps those seconds as a fact
(StageChange.reach_seconds, kept by the services), so two ways give the same figures
(tests/analytics/test_funnel_medians.py holds them equal):
- the whole company now (an admin's default funnel) reads the (order before, stage, hour)
  counts the triggers keep in ReachTally, then the few hours holding a median pre-sorted from
  the stage_reach_sorted index (medians_from_sorted_reach);
- any other scope (period, team, owner, source, a rep, --as-of) sorts its own values once
  (medians_by_sorting, base.grouped_stats); its cost follows its size.
Won deals' days to close: the whole company now walks the deal_cycle_sorted index to the
middle (Deal.cycle_seconds, computed by the database); other scopes sort theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    ReportResult,
    Stages,
    load_stages,
    money,
    ratio,
    register,
)
from leakmap.analytics.counts import deal_cells, lead_count, step_totals
from leakmap.analytics.distributions import step_medians
from leakmap.analytics.filters import Scope


@dataclass
class FunnelRow:
    step: str  # leads | deals | stage:KEY | won
    label: str
    count: int
    amount: Decimal | None  # None on the leads row
    conversion_from_previous: float | None
    median_days: float | None = None  # from deal creation to first reaching the step


def funnel_rows(scope: Scope, stages: Stages, *, with_medians: bool = True) -> list[FunnelRow]:
    """The funnel's steps: leads, deals, each open stage reached, won. Without medians (pages
    that show only counts and amounts, such as a manager's Today) their queries are skipped."""
    leads = lead_count(scope)
    totals = step_totals(deal_cells(scope, stages), stages)
    rows = [
        FunnelRow("leads", _("Leads"), leads, None, None),
        FunnelRow("deals", _("Deals"), totals.n, money(totals.amount), None),
    ]
    for i, s in enumerate(stages.open):
        rows.append(
            FunnelRow(
                f"stage:{s.key}",
                s.label,
                totals.reached_n[i],
                money(totals.reached_amount[i]),
                None,
            )
        )
    rows.append(
        FunnelRow(
            "won",
            stages.won.label if stages.won else _("Won"),
            totals.won_n,
            money(totals.won_amount),
            None,
        )
    )
    for prev, row in zip(rows, rows[1:], strict=False):
        row.conversion_from_previous = ratio(row.count, prev.count)
    if with_medians:
        medians = step_medians(scope, stages, [r.count for r in rows[2:-1]])
        for i, row in enumerate(rows[2:]):
            row.median_days = medians.get(i)
    return rows


@register("funnel")
def funnel(scope: Scope) -> ReportResult:
    stages = load_stages()
    return ReportResult(
        report="funnel",
        as_of=scope.now,
        period=scope.period_json(),
        rows=funnel_rows(scope, stages),
        title=_("Funnel"),
        columns=[
            Column("label", _("Step")),
            Column("count", _("Count"), "int"),
            Column("amount", _("Amount"), "money"),
            Column("conversion_from_previous", _("Conversion from previous step"), "rate"),
            Column("median_days", _("Median days from creation"), "days"),
        ],
    )
