"""funnel: leads → deals → each open stage reached → won (CONTRACT §4).

Intuition: one pass over the cohort's deals with a filtered COUNT/SUM per step, where "reached S"
is the per-deal fact `st_reached >= S.order` (skipping a stage counts as passing it); leads are one
COUNT. Queries: stages, leads count, deals aggregate.

How long deals take is not a funnel column: time in each stage is the stage-time report, and
creation to close is the cycle report (as Pipedrive keeps "deal conversion" and "deal duration"
apart). An earlier "median days from creation" column here sorted the whole history on every
funnel (about 90 % of its time at a million leads) for a figure those two reports already give.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    ReportResult,
    Stages,
    deal_states,
    load_stages,
    money,
    ratio,
    register,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import Lead


@dataclass
class FunnelRow:
    step: str  # leads | deals | stage:KEY | won
    label: str
    count: int
    amount: Decimal | None  # None on the leads row
    conversion_from_previous: float | None


def funnel_rows(scope: Scope, stages: Stages) -> list[FunnelRow]:
    """The funnel's steps: leads, deals, each open stage reached, won."""
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

    rows = [
        FunnelRow("leads", _("Leads"), leads, None, None),
        FunnelRow("deals", _("Deals"), totals["n"], money(totals["amt"]), None),
    ]
    for i, s in enumerate(stages.open):
        rows.append(
            FunnelRow(
                f"stage:{s.key}", s.label, totals[f"s{i}_n"], money(totals[f"s{i}_amt"]), None
            )
        )
    rows.append(
        FunnelRow(
            "won",
            stages.won.label if stages.won else _("Won"),
            totals["won_n"],
            money(totals["won_amt"]),
            None,
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
        ],
    )
