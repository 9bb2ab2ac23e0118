"""funnel: leads → deals → each open stage reached → won (CONTRACT §4).

Intuition: one pass over the cohort's deals with a filtered COUNT/SUM per step, where "reached S"
is the per-deal fact `st_reached >= S.order` (skipping a stage counts as passing it); leads are one
COUNT. The extra column `median_days` is, per step, the median of days from the deal's creation to
its first history entry into S or any later non-lost stage (created_at for deals without history);
for `won`, to its close (closed_at). Queries: stages, leads count, deals aggregate, then the medians (base.grouped_stats: a temporary
table of the values, sorted once on SQLite; four statements there, three on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, Value
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    DaysBetween,
    ReportResult,
    Stages,
    days_sql,
    deal_states,
    grouped_stats,
    load_stages,
    money,
    ratio,
    register,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import Deal, Lead, Stage, StageChange, StageKind


@dataclass
class FunnelRow:
    step: str  # leads | deals | stage:KEY | won
    label: str
    count: int
    amount: Decimal | None  # None on the leads row
    conversion_from_previous: float | None
    median_days: float | None  # from deal creation to reaching the step


def reach_days_sql(scope: Scope, steps: list[tuple[int, int]]) -> tuple[str, list]:
    """(g, v) rows: for each cohort deal with history and each step (g, order) it reached, the
    days from creation to the history entry that first took it to that order or beyond.

    One scan of the history: an entry reaches every step whose order lies in
    (reached_before, its stage's order], where reached_before is the highest non-lost order of
    the deal's earlier entries (a per-entry fact the services keep). Lost entries reach nothing.
    Step numbers and orders are ours (a VALUES list), the clock and the cohort are parameters.
    """
    qn = connection.ops.quote_name
    deals_sql, deal_params = (
        Deal.objects.filter(scope.deal_q())
        .order_by()
        .values("id", "created_at")
        .query.sql_with_params()
    )
    values = ", ".join(f"({int(g)}, {int(o)})" for g, o in steps)
    sc, st = StageChange._meta.db_table, Stage._meta.db_table
    sql = f"""
        SELECT s.column1 AS g, {days_sql(f"h.{qn('at')}", "d.created_at")} AS v
        FROM {qn(sc)} h
        JOIN {qn(st)} t ON t.id = h.to_stage_id
        JOIN ({deals_sql}) d ON d.id = h.deal_id
        CROSS JOIN (VALUES {values}) s
        WHERE h.{qn("at")} <= %s AND t.kind <> %s
          AND h.reached_before < s.column2 AND s.column2 <= t.{qn("order")}
    """
    # CROSS JOIN: SQLite keeps the tables in the order written, so the history is scanned
    # once with the few steps inside, not once per step; PostgreSQL plans it as any join.
    return sql, [*deal_params, scope.now, StageKind.LOST]


def funnel_rows(scope: Scope, stages: Stages, *, with_medians: bool = True) -> list[FunnelRow]:
    """The funnel's steps. Without medians (pages that show only counts and amounts, such as a
    manager's Today) the ranking query over every reaching deal is skipped: it is most of the
    cost on a large history."""
    leads = Lead.objects.filter(scope.lead_q()).order_by().count()
    deals = deal_states(scope, stages)
    won = won_q(stages)
    aggs = {
        "n": Count("id"),
        "amt": Sum("amount", default=Decimal(0), output_field=MONEY_FIELD),
        "won_n": Count("id", filter=won),
        "won_amt": Sum("amount", filter=won, default=Decimal(0), output_field=MONEY_FIELD),
    }
    for i, s in enumerate(stages.open):
        reached = Q(st_reached__gte=s.order)
        aggs[f"s{i}_n"] = Count("id", filter=reached)
        aggs[f"s{i}_amt"] = Sum(
            "amount", filter=reached, default=Decimal(0), output_field=MONEY_FIELD
        )
    totals = deals.aggregate(**aggs)

    # One query for every step's median: a UNION ALL of (step number, days) per reaching deal —
    # from one scan of the history, plus deals without history (reached at creation: 0 days),
    # plus won deals' days to close.
    steps = [(i, s.order) for i, s in enumerate(stages.open)]
    parts = []
    if steps:
        parts.append(reach_days_sql(scope, steps))
        no_history = (
            deals.filter(~Exists(StageChange.objects.filter(deal=OuterRef("pk"))))
            .values("st_reached")
            .query.sql_with_params()
        )
        values = ", ".join(f"({int(g)}, {int(o)})" for g, o in steps)
        parts.append(
            (
                f"SELECT s.column1 AS g, 0.0 AS v FROM ({no_history[0]}) x"
                f" CROSS JOIN (VALUES {values}) s WHERE s.column2 <= x.st_reached",
                list(no_history[1]),
            )
        )
    won_step = len(stages.open)
    qs = deals.filter(won).annotate(
        g=Value(won_step), v=DaysBetween(F("st_closed"), F("created_at"))
    )
    parts.append(qs.values("g", "v"))
    medians = grouped_stats(parts) if with_medians else {}

    rows = [
        FunnelRow("leads", _("Leads"), leads, None, None, None),
        FunnelRow("deals", _("Deals"), totals["n"], money(totals["amt"]), None, None),
    ]
    for i, s in enumerate(stages.open):
        m = medians.get(i)
        rows.append(
            FunnelRow(
                f"stage:{s.key}",
                s.label,
                totals[f"s{i}_n"],
                money(totals[f"s{i}_amt"]),
                None,
                m.median if m else None,
            )
        )
    m = medians.get(won_step)
    rows.append(
        FunnelRow(
            "won",
            stages.won.label if stages.won else _("Won"),
            totals["won_n"],
            money(totals["won_amt"]),
            None,
            m.median if m else None,
        )
    )
    for prev, row in zip(rows, rows[1:], strict=False):
        row.conversion_from_previous = ratio(row.count, prev.count)
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
            Column("median_days", _("Median days from deal creation"), "days"),
        ],
    )
