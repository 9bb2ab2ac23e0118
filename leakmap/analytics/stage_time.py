"""stage-time: how long deals stay in each open stage, and how many sit there now.

Intuition: every history entry into a stage is one observation; its length runs to the entry's
`left_at` (the deal's next entry, a per-entry fact the services keep) or to the clock if the
deal is still there (CONTRACT §4). Deals without history rows count as having entered their
current stage at created_at. Reported: mean, median and p90 (nearest rank); because plain
statistics over deals that left a stage hide a pile-up, a Kaplan–Meier median that treats deals
still in the stage as censored (stays grouped in 0.01-day steps, estimated over those points);
open_now / open_over_sla: open deals in the stage now, and those past its SLA days.

Two ways to the same figures (tests/analytics/test_stage_time_sorted.py holds them equal):
- the whole company now, the default report of an admin, reads the stays' counts per bucket
  that triggers keep (StayTally) and the few buckets it needs from the stays the database keeps
  sorted (summaries_from_sorted_stays: five small queries, no sort, ~0.16 s at a million leads);
- any other scope (a period, team, owner, source, a rep's view, --as-of) copies its
  observations to a temporary table sorted once (summaries_by_sorting: stages, the copy, the
  statistics, survival points, the drop, open-now counts); its cost follows its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    Column,
    ReportResult,
    days,
    load_stages,
    register,
)
from leakmap.analytics.distributions import stay_summaries
from leakmap.analytics.filters import Scope


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


@register("stage-time")
def stage_time(scope: Scope) -> ReportResult:
    stages = load_stages()
    summaries = stay_summaries(scope, stages)
    rows = []
    for s in stages.open:
        summary = summaries[s.id]
        st = summary.stats
        rows.append(
            StageTimeRow(
                stage=s.key,
                label=s.label,
                entered=st.n if st else 0,
                mean_days=st.mean if st else None,
                median_days=st.median if st else None,
                p90_days=st.p90 if st else None,
                km_median_days=days(summary.km_median),
                open_now=summary.open_now,
                open_over_sla=summary.over_sla,
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
