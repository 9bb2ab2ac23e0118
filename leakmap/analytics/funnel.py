"""funnel: leads → deals → each open stage reached → won (CONTRACT §4).

Intuition: one pass over the cohort's deals with a filtered COUNT/SUM per step, where "reached S"
is the per-deal fact `st_reached >= S.order` (skipping a stage counts as passing it); leads are one
COUNT. The extra column `median_days` is, per step, the median of days from the deal's creation to
its first history entry into S or any later non-lost stage (created_at for deals without history);
for `won`, to its first entry into won. Queries: stages, leads count, deals aggregate, medians.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    DaysBetween,
    ReportResult,
    Stages,
    deal_states,
    grouped_stats,
    load_stages,
    money,
    ratio,
    register,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import Lead, StageChange, StageKind


@dataclass
class FunnelRow:
    step: str  # leads | deals | stage:KEY | won
    label: str
    count: int
    amount: Decimal | None  # None on the leads row
    conversion_from_previous: float | None
    median_days: float | None  # from deal creation to reaching the step


def _reach_days(scope: Scope, order: int):
    """Days from creation to the first entry into a non-lost stage of order >= `order`."""
    first = (
        StageChange.objects.filter(
            deal=OuterRef("pk"), at__lte=scope.now, to_stage__order__gte=order
        )
        .exclude(to_stage__kind=StageKind.LOST)
        .order_by("at", "id")
        .values("at")[:1]
    )
    return DaysBetween(Coalesce(Subquery(first), F("created_at")), F("created_at"))


def funnel_rows(scope: Scope, stages: Stages) -> list[FunnelRow]:
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

    # One query for every step's median: a UNION ALL of (step number, days) per reaching deal.
    parts = []
    for i, s in enumerate(stages.open):
        qs = deals.filter(st_reached__gte=s.order).annotate(
            g=Value(i), v=_reach_days(scope, s.order)
        )
        parts.append(qs.values("g", "v"))
    won_step = len(stages.open)
    if stages.won is not None:
        qs = deals.filter(won).annotate(g=Value(won_step), v=_reach_days(scope, stages.won.order))
        parts.append(qs.values("g", "v"))
    medians = grouped_stats(parts)

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
