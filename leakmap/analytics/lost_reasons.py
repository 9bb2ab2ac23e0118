"""lost-reasons: where the money fell out, and why.

Intuition: the cohort's deals that are lost (as of the clock), grouped once by reason,
competitor, industry and stage-lost-at with COUNT and SUM(amount); the breakdowns are sums over
those few groups: by lost reason (the rows; share = that reason's deals / all lost deals), by
competitor, by industry, by the stage the deal was in before it was lost (`by_stage`), and the
"leak map" `matrix` of lost amount by stage-lost-at × reason. Queries: stages, the group-by,
the names of reasons, competitors and industries.
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
    group_key,
    load_stages,
    money,
    ratio,
    register,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import Competitor, Industry, LostReason, StageKind


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


def _ranked(totals: dict, name=lambda k: k) -> list[Breakdown]:
    """Breakdowns from {key: [deals, amount]}, biggest amount first, then by name."""
    items = [Breakdown(name(k), n, money(amt)) for k, (n, amt) in totals.items()]
    return sorted(items, key=lambda b: (-b.amount, b.key is None, b.key or ""))


@register("lost-reasons")
def lost_reasons(scope: Scope) -> ReportResult:
    stages = load_stages()
    # One read: the lost deals grouped by all four keys at once (a few hundred groups at most);
    # each breakdown is then a sum over those groups, instead of five scans of the deals.
    lost = deal_states(scope, stages, kind=StageKind.LOST)
    keys = {
        "lost_reason_key": group_key(scope, "lost_reason_id"),
        "competitor_key": group_key(scope, "competitor_id"),
        "industry_key": group_key(scope, "industry_id"),
        "lost_at_key": group_key(scope, "st_lost_at"),
    }
    groups = list(lost.annotate(**keys).values(*keys).annotate(**_agg()))
    reason_name = dict(LostReason.objects.values_list("pk", "name"))
    competitor_name = dict(Competitor.objects.values_list("pk", "name"))
    industry_name = dict(Industry.objects.values_list("pk", "name"))

    def stage_key(stage_id: int | None) -> str | None:
        return stages.by_id[stage_id].key if stage_id in stages.by_id else None

    def totals(*fields: str) -> dict:
        out: dict = {}
        for g in groups:
            key = tuple(g[f] for f in fields) if len(fields) > 1 else g[fields[0]]
            n_amt = out.setdefault(key, [0, Decimal(0)])
            n_amt[0] += g["deals"]
            n_amt[1] += g["amount"] or Decimal(0)
        return out

    reasons = _ranked(totals("lost_reason_key"), reason_name.get)
    total_n = sum(r.deals for r in reasons)
    total_amt = sum((r.amount for r in reasons), Decimal(0))
    rows = [
        LostReasonRow(r.key, r.deals, r.amount, ratio(r.deals, total_n), ratio(r.amount, total_amt))
        for r in reasons
    ]
    by_stage = _ranked(totals("lost_at_key"), stage_key)
    matrix = sorted(
        (
            MatrixCell(stage_key(st), reason_name.get(reason), n, money(amt))
            for (st, reason), (n, amt) in totals("lost_at_key", "lost_reason_key").items()
        ),
        key=lambda c: (-c.amount, c.reason is None, c.reason or "", c.stage or ""),
    )
    return ReportResult(
        report="lost-reasons",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={
            "by_competitor": _ranked(totals("competitor_key"), competitor_name.get),
            "by_industry": _ranked(totals("industry_key"), industry_name.get),
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
