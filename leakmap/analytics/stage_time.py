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
    SortedBuckets,
    Stats,
    _union,
    at,
    days,
    deal_states,
    history_in_scope,
    km_curves,
    km_median,
    load_stages,
    open_q,
    plain_rows,
    register,
    stats_of_table,
    temporary_values,
    truncated_bucket,
    unindexed,
    whole_company_now,
)
from leakmap.analytics.filters import Scope
from leakmap.analytics.stuck import over_sla_q
from leakmap.crm.models import (
    SECONDS_PER_CENTIDAY,
    Deal,
    StageChange,
    StayTally,
    WholeSecondsBetween,
)
from leakmap.crm.rules import is_over_sla


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
    entries = StageChange.objects.alias(stage_plain=unindexed("to_stage_id")).filter(
        at__lte=scope.now, stage_plain__in=shown
    )
    entries = history_in_scope(entries, scope).annotate(
        g=F("to_stage_id"),
        v=DaysBetween(Case(When(left, then=F("left_at")), default=now), F("at")),
        e=Case(When(left, then=Value(1)), default=Value(0), output_field=IntegerField()),
    )
    no_history = (
        deal_states(scope, stages)
        .filter(open_q(stages))
        .filter(~Exists(StageChange.objects.filter(deal=OuterRef("pk"))))
        .annotate(g=F("st_stage"), v=DaysBetween(now, F("created_at")), e=Value(0))
    )
    return entries, no_history


@dataclass(frozen=True)
class StageSummary:
    stats: Stats | None  # of every observed stay, finished or not
    km_median: float | None  # days; None when the survival estimate never reaches 0.5
    open_now: int
    over_sla: int


def summaries_by_sorting(scope: Scope, stages) -> dict[int, StageSummary]:
    """Any scope: the observations are copied to a temporary table and sorted once."""
    entries, no_history = observations(scope, stages)
    # Both summaries read one temporary copy of the observations (sorted once on SQLite).
    inner, params = _union(
        [entries.values("g", "v", "e"), no_history.values("g", "v", "e")], "g, v, e"
    )
    with temporary_values(inner, params, "g, v, e") as table:
        stats = stats_of_table(table)
        curves = km_curves([(f"SELECT g, v, e FROM {table}", [])])
    over_sla = over_sla_q(stages, scope.now)
    open_now = {
        g["st_stage"]: g
        for g in deal_states(scope, stages)
        .filter(open_q(stages))
        .values("st_stage")
        .annotate(n=Count("id"), over=Count("id", filter=over_sla))
    }
    out = {}
    for s in stages.open:
        now = open_now.get(s.id, {"n": 0, "over": 0})
        out[s.id] = StageSummary(
            stats.get(s.id), km_median(curves.get(s.id, [])), now["n"], now["over"]
        )
    return out


def summaries_from_sorted_stays(scope: Scope, stages) -> dict[int, StageSummary]:
    """The whole company now (see whole_company_now), without sorting a single stay.

    Finished stays are counted per (stage, hundredth of a day) with their sum in StayTally,
    which triggers keep (some ten thousand rows, instead of a grouped read of every stay):
    all the survival curve needs; a median or p90 is then found by counting buckets, and read
    exactly from the one bucket it falls in, from the stage_stay_sorted index, which keeps the
    stays in (stage, hundredth-of-a-day, seconds) order. Stays still going on are the open
    deals' (now − stage_entered_at, as the services keep it: the newest entry's time, or
    created_at without history), a few per cent of the rows, read from the deals.
    Queries: stages, the future-entry check, buckets, open deals (two), the values of the
    chosen buckets.
    """
    shown = [s.id for s in stages.open]
    finished: dict[int, dict[int, int]] = {sid: {} for sid in shown}
    total: dict[int, int] = dict.fromkeys(shown, 0)
    for sid, bucket, n, seconds in plain_rows(
        StayTally.objects.filter(to_stage_id__in=shown, n__gt=0)
        .values_list("to_stage_id", "stay_centidays", "n", "seconds")
        .order_by("to_stage_id", "stay_centidays")
    ):
        finished[sid][bucket] = n
        total[sid] += seconds
    ongoing: dict[int, list[int]] = {sid: [] for sid in shown}
    # Two reads, so that the common one needs only the deal_stage_cover index: the
    # deals with stage_entered_at (all of them, as the services keep it), and any without,
    # whose stay counts from created_at. With created_at in the one query, SQLite looked up
    # every open deal's row (about 100 ms at a million leads instead of a few).
    for entered, missing in (("stage_entered_at", False), ("created_at", True)):
        for sid, seconds in plain_rows(
            Deal.objects.filter(stage_id__in=shown, stage_entered_at__isnull=missing)
            .annotate(seconds=WholeSecondsBetween(at(scope.now), F(entered)))
            .values_list("stage_id", "seconds")
            .order_by()
        ):
            ongoing[sid].append(seconds)

    stays = {
        sid: SortedBuckets(finished[sid], ongoing[sid], total[sid] + sum(ongoing[sid]), centiday)
        for sid in shown
    }
    # The finished stays of every bucket holding a wanted rank, in one query (the partial
    # index's condition in each branch, or SQLite will not use it for an OR).
    wanted = {(sid, b) for sid, st in stays.items() for b in st.rank_buckets()}
    exact: dict[tuple[int, int], list[int]] = {key: [] for key in wanted}
    if wanted:
        in_buckets = Q()
        for sid, b in sorted(wanted):
            in_buckets |= Q(to_stage_id=sid, stay_centidays=b, stay_seconds__isnull=False)
        for sid, b, seconds in plain_rows(
            StageChange.objects.filter(in_buckets)
            .values_list("to_stage_id", "stay_centidays", "stay_seconds")
            .order_by()
        ):
            exact[(sid, b)].append(seconds)

    out = {}
    for s in stages.open:
        st = stays[s.id]
        over = 0
        if s.sla_days is not None:
            over = sum(
                1
                for seconds in ongoing[s.id]
                if is_over_sla(s.sla_days, days_in_stage=seconds / 86400)
            )
        out[s.id] = StageSummary(
            st.stats(lambda b, sid=s.id: exact[(sid, b)]),
            km_median(km_points(st)),
            len(ongoing[s.id]),
            over,
        )
    return out


def centiday(seconds: int) -> int:
    """The hundredth-of-a-day bucket of a stay, as the generated column and base.km_curves put
    it (only a deal created after the clock has a negative one)."""
    return truncated_bucket(seconds, SECONDS_PER_CENTIDAY)


def km_points(stays: SortedBuckets) -> list[tuple[float, int, int]]:
    """base.km_curves' points of one stage's stays: (t, events, total); finished stays (the
    counted ones) are events, ongoing ones censored."""
    return [(b / 100, fin, fin + ong) for b, fin, ong in stays.buckets]


@register("stage-time")
def stage_time(scope: Scope) -> ReportResult:
    stages = load_stages()
    if whole_company_now(scope):
        summaries = summaries_from_sorted_stays(scope, stages)
    else:
        summaries = summaries_by_sorting(scope, stages)
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
