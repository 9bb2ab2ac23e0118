"""stuck: open deals over their stage's SLA, or without a follow-up for N days.

Intuition: one filtered query over the open deals' state: days in stage = clock − stage entry;
days since follow-up = clock − last follow-up (null when there was none; then the deal's
creation is the reference for the N-day test, so a deal made yesterday is not stuck). N is
--no-follow-up-days, else settings.LEAKMAP_NO_FOLLOW_UP_DAYS (7). reason is over_sla when the
stage's SLA is passed (it wins when both hold), else no_follow_up. Rows are the stuck deals,
longest in stage first. Queries: stages, the deals, their owners' names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter

from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    DaysBetween,
    ReportResult,
    at,
    deal_states,
    load_stages,
    money,
    plain_rows,
    register,
    usernames,
)
from leakmap.analytics.filters import Scope
from leakmap.crm import rules
from leakmap.crm.models import Stage, StageKind


@dataclass(slots=True)
class StuckRow:
    deal: str
    deal_id: int
    owner: str
    stage: str
    days_in_stage: float
    days_since_follow_up: float | None
    reason: str  # over_sla | no_follow_up
    amount: Decimal

    def json_row(self) -> dict:
        """base.to_jsonable's result for this row, spelled out: a report can have tens of
        thousands of them, and the generic walk over the fields costs twice as much."""
        return {
            "deal": self.deal,
            "deal_id": self.deal_id,
            "owner": self.owner,
            "stage": self.stage,
            "days_in_stage": self.days_in_stage,
            "days_since_follow_up": self.days_since_follow_up,
            "reason": self.reason,
            "amount": float(self.amount),
        }


def no_follow_up_limit(days: int | None = None) -> int:
    return rules.no_follow_up_days(days)


def stuck_now_q(stages, now: dt.datetime, limit: int | None = None) -> Q:
    """The stuck rule on the deals' current facts, as index-friendly ranges (the Today page's
    bounded lists): open, and over its stage's SLA, or silent (crm.rules; the silent limit is
    `limit` days when given), or flagged by a rule. The same rule as the report below, which
    also works as of a past moment."""
    q = Q(needs_attention=True)
    q |= rules.silent_q("last_follow_up_at", now, limit)
    q |= Q(last_follow_up_at__isnull=True) & rules.silent_q("created_at", now, limit)
    for stage in stages:
        if stage.kind == StageKind.OPEN and stage.sla_days is not None:
            q |= Q(stage=stage) & rules.over_sla_q("stage_entered_at", now, stage.sla_days)
    # Open stages (of every pipeline) by id: the (stage, stage_entered_at) index then narrows
    # the scan to open deals, already in the order the lists are sorted by.
    open_ids = Stage.objects.filter(kind=StageKind.OPEN).values("pk")
    return Q(stage_id__in=open_ids) & q


def over_sla_q(stages, now: dt.datetime) -> Q:
    """crm.rules.is_over_sla on deal_states' st_* annotations: one term per stage with an SLA,
    a time compared with the clock moved back (no date arithmetic per deal)."""
    q = Q(pk__in=[])
    for s in stages.by_id.values():
        if s.sla_days is not None:
            q |= Q(st_stage=s.id) & rules.over_sla_q("st_entered", now, s.sla_days)
    return q


def stuck_reasons(deal, now: dt.datetime, limit: int | None = None) -> dict:
    """Why one deal (current facts) matches stuck_now_q: the same rules, for display."""
    entered = deal.stage_entered_at or deal.created_at
    last = deal.last_follow_up_at or deal.created_at
    return {
        "days_in_stage": (now - entered).days,
        "over_sla": rules.is_over_sla(deal.stage.sla_days, entered_at=entered, now=now),
        "no_follow_up": rules.is_silent(last, now, limit),
        "days_since_follow_up": (now - last).days,
    }


@register("stuck")
def stuck(scope: Scope) -> ReportResult:
    stages = load_stages()
    no_follow_up = no_follow_up_limit(scope.filters.no_follow_up_days)
    now = at(scope.now)
    # The rule as comparisons of times with the clock moved back (not of day counts): the
    # database then computes days only for the deals it returns (at a million leads, date
    # arithmetic on every open deal, several times each, was a third of the report).
    over_sla = over_sla_q(stages, scope.now)
    silent = rules.silent_q("st_silent_since", scope.now, no_follow_up)
    deals = deal_states(scope, stages, kind=StageKind.OPEN)
    qs = (
        deals.annotate(st_silent_since=Coalesce(F("st_last_fu"), F("created_at")))
        .filter(over_sla | silent)
        .annotate(
            in_stage=DaysBetween(now, F("st_entered")),
            since_fu=DaysBetween(now, F("st_last_fu")),
        )
        .annotate(
            why=Case(
                When(over_sla, then=Value("over_sla")),
                default=Value("no_follow_up"),
                output_field=CharField(),
            )
        )
        .order_by()
        .values_list("id", "name", "owner_id", "st_stage", "in_stage", "since_fu", "why", "amount")
    )
    # Every open deal can be stuck (tens of thousands of rows): plain tuples from the cursor,
    # the owners' names from one small query, instead of per-row joins and field converters.
    # A page that shows the top of the list gets only those rows, and the count.
    limit = scope.filters.row_limit
    if limit is None:
        # Longest in the stage first, then by id. Sorted here, as two sorts on one key each
        # (stable, in C): SQLite's sorter would carry each whole row, names included.
        found = plain_rows(qs)
        found.sort(key=itemgetter(0))
        found.sort(key=itemgetter(4), reverse=True)
        total = None
    else:
        found = plain_rows(qs.order_by("-in_stage", "id")[:limit])
        total = None if len(found) < limit else qs.count()
    owners = usernames({r[2] for r in found})
    stage_key = {pk: s.key for pk, s in stages.by_id.items()}
    # Positional, with days()'s rounding inline: tens of thousands of rows. Amounts recur (a
    # few thousand distinct among 55k deals): one Decimal each.
    amounts: dict = {}

    def as_money(value) -> Decimal:
        m = amounts.get(value)
        if m is None:
            m = amounts[value] = money(value)
        return m

    rows = [
        StuckRow(
            name,
            pk,
            owners[owner_id][0],
            stage_key[stage_id],
            round(in_stage, 4),
            None if since_fu is None else round(since_fu, 4),
            why,
            as_money(amount),
        )
        for pk, name, owner_id, stage_id, in_stage, since_fu, why, amount in found
    ]
    return ReportResult(
        report="stuck",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={"no_follow_up_days": no_follow_up},
        total_rows=total,
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
