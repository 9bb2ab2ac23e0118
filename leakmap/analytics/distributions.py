"""Distributions: the medians, p90s and survival curves of the reports, whatever the storage.

Like analytics.counts for counts, this is where the choice of how to read a distribution is
made, once, from the scope: the whole company now reads the values the database keeps in order
(indexes over generated columns, the StayTally and ReachTally buckets the triggers keep) and
walks to the ranks it needs; any other scope (a period, a past date, an owner, a team, a source)
sorts its own values once (base.grouped_stats). Both give the same figures; the tests in
tests/analytics/test_funnel_medians.py, test_stage_time_sorted.py and test_sorted_cycles.py
hold them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from django.db import connection
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

from leakmap.analytics.base import (
    DaysBetween,
    SortedBuckets,
    Stages,
    Stats,
    _union,
    at,
    deal_states,
    every_deal_now,
    grouped_stats,
    history_in_scope,
    km_curves,
    km_median,
    open_q,
    plain_rows,
    stats_at_ranks,
    stats_of_table,
    temporary_values,
    truncated_bucket,
    unindexed,
    whole_company_now,
    won_cycle_stats,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.analytics.stuck import over_sla_q
from leakmap.crm.models import (
    NONZERO_REACH,
    SECONDS_PER_CENTIDAY,
    SECONDS_PER_HOUR,
    Deal,
    ReachTally,
    Stage,
    StageChange,
    StayTally,
    WholeSecondsBetween,
)
from leakmap.crm.rules import is_over_sla


def won_medians(scope: Scope, stages: Stages) -> dict[int, float | None]:
    """{won step: median days from creation to close} over the cohort's won deals."""
    won_step = len(stages.open)
    qs = (
        deal_states(scope, stages)
        .filter(won_q(stages))
        .annotate(g=Value(won_step), v=DaysBetween(F("st_closed"), F("created_at")))
    )
    return {g: st.median for g, st in grouped_stats([qs.values("g", "v")]).items()}


def step_ranges(stages: Stages) -> list[tuple[int, int]]:
    """(step number, order) of each open stage: an entry reaches the steps whose order lies in
    (its reached_before, its stage's order]."""
    return [(i, s.order) for i, s in enumerate(stages.open)]


def medians_by_sorting(scope: Scope, stages: Stages) -> dict[int, float | None]:
    """Any scope: (step, days) for every reaching entry of the scope's deals up to the clock,
    and 0 days for each step a deal without history reached, sorted once (base.grouped_stats).
    One scan of the history: the few steps are crossed in (VALUES, numbers of ours)."""
    steps = step_ranges(stages)
    if not steps:
        return {}
    qn = connection.ops.quote_name
    values = ", ".join(f"({int(g)}, {int(o)})" for g, o in steps)
    entries = (
        history_in_scope(
            StageChange.objects.filter(at__lte=scope.now, reach_seconds__isnull=False), scope
        )
        .values("reached_before", "to_stage_id", "reach_seconds")
        .order_by()
    )
    entries_sql, entries_params = entries.query.sql_with_params()
    reaching = (
        f"SELECT s.column1 AS g, e.reach_seconds / 86400.0 AS v"
        f" FROM ({entries_sql}) e JOIN {qn(Stage._meta.db_table)} t ON t.id = e.to_stage_id"
        f" CROSS JOIN (VALUES {values}) s"
        f" WHERE e.reached_before < s.column2 AND s.column2 <= t.{qn('order')}"
    )
    no_history_sql, no_history_params = (
        deal_states(scope, stages)
        .filter(~Exists(StageChange.objects.filter(deal=OuterRef("pk"))))
        .values("st_reached")
        .query.sql_with_params()
    )
    at_creation = (
        f"SELECT s.column1 AS g, 0.0 AS v FROM ({no_history_sql}) x"
        f" CROSS JOIN (VALUES {values}) s WHERE s.column2 <= x.st_reached"
    )
    sql, params = _union(
        [(reaching, list(entries_params)), (at_creation, list(no_history_params))], "g, v"
    )
    stats = grouped_stats([(sql, params)])
    return {i: stats[i].median if i in stats else None for i, _o in steps}


def medians_from_sorted_reach(stages: Stages, counts: list[int]) -> dict[int, float | None]:
    """The whole company now (base.whole_company_now), without sorting: `counts` are the
    funnel's counts of the open steps, every deal that reached each.

    ReachTally, which triggers keep, gives per (order before, stage, hour) how many entries
    reached there after their deal's creation (some ten thousand rows, instead of a grouped
    read of every entry of the stage_reach_sorted index); a step's values are the groups whose
    order range covers it. The step's other deals reached it at creation (in the stage they
    were created in, or without history): 0 days each. The median's hour is found by counting,
    and its values read from that hour's groups alone, from the index.
    """
    steps = step_ranges(stages)
    by_hour: dict[int, dict[int, int]] = {i: {} for i, _o in steps}
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (step, hour) → its groups
    for before, stage_id, hour, n in plain_rows(
        ReachTally.objects.filter(n__gt=0)
        .values_list("reached_before", "to_stage_id", "reach_hours", "n")
        .order_by("reached_before", "to_stage_id", "reach_hours")
    ):
        reached = stages.by_id[stage_id].order
        for i, o in steps:
            if before < o <= reached:
                by_hour[i][hour] = by_hour[i].get(hour, 0) + n
                groups.setdefault((i, hour), []).append((before, stage_id))
    values = {
        i: SortedBuckets(
            by_hour[i],
            [],
            0,
            hour_of,
            zeros=counts[i] - sum(by_hour[i].values()),
            p90=False,
        )
        for i, _o in steps
    }
    wanted = {(i, h) for i, v in values.items() for h in v.rank_buckets()}
    exact: dict[tuple[int, int], list[int]] = {key: [] for key in wanted}
    to_read: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for i, h in wanted:
        for before, stage_id in groups.get((i, h), []):
            to_read.setdefault((before, stage_id, h), []).append((i, h))
    if to_read:
        # One query for the groups to read (the partial index's condition in each branch, or
        # SQLite will not use it for an OR).
        in_groups = Q()
        for before, stage_id, h in sorted(to_read):
            in_groups |= Q(
                NONZERO_REACH, reached_before=before, to_stage_id=stage_id, reach_hours=h
            )
        for before, stage_id, h, seconds in plain_rows(
            StageChange.objects.filter(in_groups)
            .values_list("reached_before", "to_stage_id", "reach_hours", "reach_seconds")
            .order_by()
        ):
            for key in to_read[(before, stage_id, h)]:
                exact[key].append(seconds)
    out = {}
    for i, v in values.items():
        st = v.stats(lambda h, i=i: exact[(i, h)])
        out[i] = st.median if st else None
    return out


def hour_of(seconds: int) -> int:
    """The hour bucket of a reach, as the generated StageChange.reach_hours."""
    return truncated_bucket(seconds, SECONDS_PER_HOUR)


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
    # every open deal's row.
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


ALL = 0  # not a user id (they start at 1), so it cannot collide with an owner's group


def stats_by_sorting(scope: Scope, stages) -> tuple[dict[int, Stats], Stats | None]:
    """Any scope: every won deal's days, per owner and overall, sorted once."""
    won = deal_states(scope, stages).filter(won_q(stages))
    v = DaysBetween(F("st_closed"), F("created_at"))
    stats = grouped_stats(
        [
            won.annotate(g=F("owner_id"), v=v).values("g", "v"),
            won.annotate(g=Value(ALL), v=v).values("g", "v"),
        ]
    )
    return stats, stats.pop(ALL, None)


def stats_from_sorted_cycles(stages) -> tuple[dict[int, Stats], Stats | None]:
    """Every won deal now: the won deals' seconds to close in (owner, seconds) order, walked
    from the deal_cycle_by_owner index without a sort, and each rep's ranks picked from their
    run of it here; the overall figures from base.won_cycle_stats.

    One plain read, not a window numbering each rep's deals in SQL: fetching the bare numbers
    costs less than SQLite's window bookkeeping."""
    stats: dict[int, Stats] = {}
    rows = plain_rows(
        Deal.objects.filter(stage_id__in=stages.won_ids, cycle_seconds__isnull=False)
        .values_list("owner_id", "cycle_seconds")
        .order_by("owner_id", "cycle_seconds")
    )
    for owner_id, run in groupby(rows, key=itemgetter(0)):
        seconds = [s for _owner, s in run]
        stats[owner_id] = stats_at_ranks(
            len(seconds), sum(seconds), lambda rank, s=seconds: s[rank - 1] / 86400
        )
    return stats, won_cycle_stats(stages)


# --- The choice, made once per distribution ------------------------------------------------------


def step_medians(scope: Scope, stages: Stages, counts: list[int]) -> dict[int, float | None]:
    """{step: median days from a deal's creation to first reaching it} for the funnel's open
    steps (whose deal counts are `counts`) and its won step (days to close)."""
    if whole_company_now(scope):
        medians = medians_from_sorted_reach(stages, counts)
        won = won_cycle_stats(stages, p90=False)
        medians[len(stages.open)] = won.median if won else None
        return medians
    medians = medians_by_sorting(scope, stages)
    medians.update(won_medians(scope, stages))
    return medians


def stay_summaries(scope: Scope, stages) -> dict[int, StageSummary]:
    """Per open stage id: its stays' statistics, Kaplan-Meier median and open deals now."""
    if whole_company_now(scope):
        return summaries_from_sorted_stays(scope, stages)
    return summaries_by_sorting(scope, stages)


def won_cycles(scope: Scope, stages) -> tuple[dict[int, Stats], Stats | None]:
    """The won deals' days from creation to close: per owner id, and over all of them."""
    if every_deal_now(scope):
        return stats_from_sorted_cycles(stages)
    return stats_by_sorting(scope, stages)
