"""lost-reasons: where the money fell out, and why.

Intuition: the cohort's deals that are lost (as of the clock), grouped five ways with COUNT and
SUM(amount): by lost reason (the rows; share = that reason's deals / all lost deals), by
competitor, by industry, by the stage the deal was in before it was lost (`by_stage`), and the
"leak map" `matrix` of lost amount by stage-lost-at × reason. Queries: stages + five group-bys.
A deal lost before --as-of and reopened since has no reason on record any more: it shows as null.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    ReportResult,
    deal_states,
    load_stages,
    lost_q,
    money,
    ratio,
    register,
)
from leakmap.analytics.filters import Scope


@dataclass
class LostReasonRow:
    reason: str | None
    deals: int
    amount: Decimal
    share: float | None  # of all lost deals (by count)
    amount_share: float | None  # of all lost amount


@dataclass
class Breakdown:
    key: str | None
    deals: int
    amount: Decimal


@dataclass
class MatrixCell:
    stage: str | None  # key of the stage it was lost at
    reason: str | None
    deals: int
    amount: Decimal


def _agg():
    return {
        "deals": Count("id"),
        "amount": Sum("amount", default=Decimal(0), output_field=MONEY_FIELD),
    }


@register("lost-reasons")
def lost_reasons(scope: Scope) -> ReportResult:
    stages = load_stages()
    lost = deal_states(scope, stages).filter(lost_q(stages))

    def breakdown(field: str) -> list[Breakdown]:
        grouped = lost.values(field).annotate(**_agg()).order_by("-amount", field)
        return [Breakdown(g[field], g["deals"], money(g["amount"])) for g in grouped]

    reasons = breakdown("lost_reason__name")
    total_n = sum(r.deals for r in reasons)
    total_amt = sum((r.amount for r in reasons), Decimal(0))
    rows = [
        LostReasonRow(r.key, r.deals, r.amount, ratio(r.deals, total_n), ratio(r.amount, total_amt))
        for r in reasons
    ]

    def stage_key(stage_id: int | None) -> str | None:
        return stages.by_id[stage_id].key if stage_id in stages.by_id else None

    by_stage = [
        Breakdown(stage_key(g["st_lost_at"]), g["deals"], money(g["amount"]))
        for g in lost.values("st_lost_at").annotate(**_agg()).order_by("-amount")
    ]
    matrix = [
        MatrixCell(
            stage_key(g["st_lost_at"]), g["lost_reason__name"], g["deals"], money(g["amount"])
        )
        for g in lost.values("st_lost_at", "lost_reason__name")
        .annotate(**_agg())
        .order_by("-amount", "lost_reason__name")
    ]
    return ReportResult(
        report="lost-reasons",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={
            "by_competitor": breakdown("competitor__name"),
            "by_industry": breakdown("industry__name"),
            "by_stage": by_stage,
            "matrix": matrix,
        },
        title=_("Lost reasons"),
        columns=[
            Column("reason", _("Lost reason")),
            Column("deals", _("Deals"), "int", total=True),
            Column("amount", _("Amount"), "money", total=True),
            Column("share", _("Share of lost deals"), "rate"),
            Column("amount_share", _("Share of lost amount"), "rate"),
        ],
    )
