"""stage-time: how long deals stay in each open stage, and how many sit there now.

Intuition: every history entry into a stage is one observation; its length runs to the entry's
`left_at` (the deal's next entry, a per-entry fact the services keep) or to the clock if the
deal is still there (CONTRACT §4). Deals without history rows count as having entered their
current stage at created_at. Mean, median and p90 (nearest rank) come from SQL over one
temporary copy of the observations (base.stats_of_table); because plain statistics over deals
that left a stage hide a pile-up, the Kaplan–Meier median treats deals still in the stage as
censored (grouped in SQL to 0.01-day steps, estimated over those points). open_now /
open_over_sla: open deals in the stage now, and those past its SLA days.
Queries: stages, the observations into a temporary table (sorted on SQLite), the statistics
(group bounds and middle values on SQLite, one query on PostgreSQL), survival points,
dropping the table, open-now counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
    When,
)
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    DaysBetween,
    ReportResult,
    _union,
    at,
    days,
    deal_states,
    km_curves,
    km_median,
    load_stages,
    open_q,
    register,
    stats_of_table,
    temporary_values,
    unindexed,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import StageChange


@dataclass
class StageTimeRow:
    stage: str
    label: str
    entered: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None
    km_median_days: float | None  # deals still in the stage as censored observations
    open_now: int
    open_over_sla: int
    sla_days: int | None


def observations(scope: Scope, stages):
    """(g = stage id, v = days, e = left?) for history entries and for deals without history.

    An entry's stay ends at its `left_at` (the deal's next entry, kept by the services) when
    that is not after the clock; otherwise the deal is still there as of the clock: censored.
    """
    now = at(scope.now)
    left = Q(left_at__isnull=False, left_at__lte=scope.now)
    # Only the stages the report has rows for: entries into won and lost (a fifth of the
    # history) would be sorted for nothing.
    shown = [s.id for s in stages.open]
    # (`+ 0`: a scan of the history, not a walk of the stage index with a row lookup each.)
    entries = (
        StageChange.objects.alias(stage_plain=unindexed("to_stage_id"))
        .filter(scope.deal_q("deal__"), at__lte=scope.now, stage_plain__in=shown)
        .annotate(
            g=F("to_stage_id"),
            v=DaysBetween(Case(When(left, then=F("left_at")), default=now), F("at")),
            e=Case(When(left, then=Value(1)), default=Value(0), output_field=IntegerField()),
        )
    )
    no_history = (
        deal_states(scope, stages)
        .filter(open_q(stages))
        .filter(~Exists(StageChange.objects.filter(deal=OuterRef("pk"))))
        .annotate(g=F("st_stage"), v=DaysBetween(now, F("created_at")), e=Value(0))
    )
    return entries, no_history


@register("stage-time")
def stage_time(scope: Scope) -> ReportResult:
    stages = load_stages()
    entries, no_history = observations(scope, stages)
    # Both summaries read one temporary copy of the observations (sorted once on SQLite).
    inner, params = _union(
        [entries.values("g", "v", "e"), no_history.values("g", "v", "e")], "g, v, e"
    )
    with temporary_values(inner, params, "g, v, e") as table:
        stats = stats_of_table(table)
        curves = km_curves([(f"SELECT g, v, e FROM {table}", [])])
    over_sla = Q(sla__isnull=False) & Q(in_stage__gt=F("sla"))
    open_now = {
        g["st_stage"]: g
        for g in deal_states(scope, stages)
        .filter(open_q(stages))
        .annotate(sla=stages.sla_case(), in_stage=DaysBetween(at(scope.now), F("st_entered")))
        .values("st_stage")
        .annotate(n=Count("id"), over=Count("id", filter=over_sla))
    }
    rows = []
    for s in stages.open:
        st = stats.get(s.id)
        now = open_now.get(s.id, {"n": 0, "over": 0})
        rows.append(
            StageTimeRow(
                stage=s.key,
                label=s.label,
                entered=st.n if st else 0,
                mean_days=st.mean if st else None,
                median_days=st.median if st else None,
                p90_days=st.p90 if st else None,
                km_median_days=days(km_median(curves.get(s.id, []))),
                open_now=now["n"],
                open_over_sla=now["over"],
                sla_days=s.sla_days,
            )
        )
    return ReportResult(
        report="stage-time",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        title=_("Time in stage"),
        columns=[
            Column("label", _("Stage")),
            Column("entered", _("Entries"), "int"),
            Column("mean_days", _("Mean days"), "days"),
            Column("median_days", _("Median days"), "days"),
            Column("p90_days", _("P90 days"), "days"),
            Column("km_median_days", _("Median days (incl. still open)"), "days"),
            Column("open_now", _("Open now"), "int", total=True),
            Column("open_over_sla", _("Over SLA"), "int", total=True),
            Column("sla_days", _("SLA days"), "int"),
        ],
    )
