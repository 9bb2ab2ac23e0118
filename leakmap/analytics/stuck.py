"""stuck: open deals over their stage's SLA, or without a follow-up for N days.

Intuition: one filtered query over the open deals' state: days in stage = clock − stage entry;
days since follow-up = clock − last follow-up (null when there was none; then the deal's
creation is the reference for the N-day test, so a deal made yesterday is not stuck). N is
--no-follow-up-days, else settings.LEAKMAP_NO_FOLLOW_UP_DAYS (7). reason is over_sla when the
stage's SLA is passed (it wins when both hold), else no_follow_up. Rows are the stuck deals,
longest in stage first. Queries: stages, the deals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    DaysBetween,
    ReportResult,
    at,
    days,
    deal_states,
    load_stages,
    money,
    open_q,
    register,
)
from leakmap.analytics.filters import Scope


@dataclass
class StuckRow:
    deal: str
    deal_id: int
    owner: str
    stage: str
    days_in_stage: float
    days_since_follow_up: float | None
    reason: str  # over_sla | no_follow_up
    amount: Decimal


@register("stuck")
def stuck(scope: Scope) -> ReportResult:
    stages = load_stages()
    limit = scope.filters.no_follow_up_days or getattr(settings, "LEAKMAP_NO_FOLLOW_UP_DAYS", 7)
    now = at(scope.now)
    over_sla = Q(sla__isnull=False) & Q(in_stage__gt=F("sla"))
    silent = Q(silent_for__gt=limit)
    qs = (
        deal_states(scope, stages)
        .filter(open_q(stages))
        .annotate(
            sla=stages.sla_case(),
            in_stage=DaysBetween(now, F("st_entered")),
            since_fu=DaysBetween(now, F("st_last_fu")),
            silent_for=DaysBetween(now, Coalesce(F("st_last_fu"), F("created_at"))),
        )
        .filter(over_sla | silent)
        .annotate(
            why=Case(
                When(over_sla, then=Value("over_sla")),
                default=Value("no_follow_up"),
                output_field=CharField(),
            )
        )
        .order_by("-in_stage", "id")
        .values(
            "id", "name", "owner__username", "st_stage", "in_stage", "since_fu", "why", "amount"
        )
    )
    rows = [
        StuckRow(
            deal=d["name"],
            deal_id=d["id"],
            owner=d["owner__username"],
            stage=stages.by_id[d["st_stage"]].key,
            days_in_stage=days(d["in_stage"]),
            days_since_follow_up=days(d["since_fu"]),
            reason=d["why"],
            amount=money(d["amount"]),
        )
        for d in qs
    ]
    return ReportResult(
        report="stuck",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={"no_follow_up_days": limit},
        title=_("Stuck deals"),
        columns=[
            Column("deal", _("Deal")),
            Column("owner", _("Owner")),
            Column("stage", _("Stage")),
            Column("days_in_stage", _("Days in stage"), "days"),
            Column("days_since_follow_up", _("Days since follow-up"), "days"),
            Column("reason", _("Reason")),
            Column("amount", _("Amount"), "money", total=True),
        ],
    )
