"""funnel: leads → deals → each open stage reached → won (CONTRACT §4).

Intuition: one pass over the cohort's deals with a filtered COUNT/SUM per step, where "reached S"
is the per-deal fact `st_reached >= S.order` (skipping a stage counts as passing it); leads are one
COUNT. Queries: stages, leads count, deals aggregate, then the medians.

Beside the contract's columns, `median_days` per step: the median of days from each reaching
deal's creation to its first history entry into the step or any later non-lost stage (0 for a
deal without history: it counts as having been there since creation); for `won`, days to its
close. An entry that first takes a deal past an order keeps those seconds as a fact
(StageChange.reach_seconds, kept by the services), so two ways give the same figures
(tests/analytics/test_funnel_medians.py holds them equal):
- the whole company now (an admin's default funnel) reads the (order before, stage, hour)
  counts the triggers keep in ReachTally, then the few hours holding a median pre-sorted from
  the stage_reach_sorted index (medians_from_sorted_reach);
- any other scope (period, team, owner, source, a rep, --as-of) sorts its own values once
  (medians_by_sorting, base.grouped_stats); its cost follows its size.
Won deals' days to close: the whole company now walks the deal_cycle_sorted index to the
middle (Deal.cycle_seconds, computed by the database); other scopes sort theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, Value
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    EVERY_OWNER,
    MONEY_FIELD,
    Column,
    DaysBetween,
    ReportResult,
    SortedBuckets,
    Stages,
    TallyOwners,
    _union,
    deal_states,
    deals_per_reach_and_stage,
    from_cents,
    grouped_stats,
    history_in_scope,
    load_stages,
    money,
    plain_rows,
    ratio,
    register,
    tally_owners,
    truncated_bucket,
    whole_company_now,
    whole_sum,
    won_cycle_stats,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm.models import (
    NONZERO_REACH,
    SECONDS_PER_HOUR,
    Lead,
    LeadTally,
    ReachTally,
    Stage,
    StageChange,
)


@dataclass
class FunnelRow:
    step: str  # leads | deals | stage:KEY | won
    label: str
    count: int
    amount: Decimal | None  # None on the leads row
    conversion_from_previous: float | None
    median_days: float | None = None  # from deal creation to first reaching the step


def funnel_rows(scope: Scope, stages: Stages, *, with_medians: bool = True) -> list[FunnelRow]:
    """The funnel's steps: leads, deals, each open stage reached, won. Without medians (pages
    that show only counts and amounts, such as a manager's Today) their queries are skipped."""
    owners = tally_owners(scope)
    if owners is not None:
        leads = count_of_leads(owners)
        totals = step_totals_of_every_deal(stages, owners)
    else:
        leads = Lead.objects.filter(scope.lead_q()).order_by().count()
        totals = step_totals(scope, stages)

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
    if with_medians:
        step_rows = rows[2:-1]
        if whole_company_now(scope):
            medians = medians_from_sorted_reach(stages, [r.count for r in step_rows])
            won = won_cycle_stats(stages, p90=False)
            medians[len(stages.open)] = won.median if won else None
        else:
            medians = medians_by_sorting(scope, stages)
            medians.update(won_medians(scope, stages))
        for i, row in enumerate(rows[2:]):
            row.median_days = medians.get(i)
    return rows


def count_of_leads(owners: TallyOwners = EVERY_OWNER) -> int:
    """How many leads there are (of some owners, or all), from the lead tally the database
    keeps (crm.LeadTally): a sum over a few thousand rows, where PostgreSQL counted the million
    leads' index (28 ms), or a manager's share of it (48-79 ms at a million)."""
    return owners.of_leads(LeadTally.objects.all()).aggregate(n=whole_sum("n"))["n"] or 0


def step_totals(scope: Scope, stages: Stages) -> dict:
    """Count and amount of the cohort's deals, won, and per open step (n, amt, won_n,
    won_amt, s{i}_n, s{i}_amt): one pass with a filtered COUNT/SUM each."""
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
    return deal_states(scope, stages).aggregate(**aggs)


def step_totals_of_every_deal(stages: Stages, owners: TallyOwners = EVERY_OWNER) -> dict:
    """step_totals for every deal as it is now (of the owners given, else of all): the deals
    per (reached order, stage) from the deal tally, added up per step here."""
    won = set(stages.won_ids)
    totals: dict = {"n": 0, "amt": Decimal(0), "won_n": 0, "won_amt": Decimal(0)}
    for i in range(len(stages.open)):
        totals[f"s{i}_n"], totals[f"s{i}_amt"] = 0, Decimal(0)
    for reached, stage_id, n, cents in deals_per_reach_and_stage(owners):
        amount = from_cents(cents)
        totals["n"] += n
        totals["amt"] += amount
        if stage_id in won:
            totals["won_n"] += n
            totals["won_amt"] += amount
        for i, s in enumerate(stages.open):
            if reached >= s.order:
                totals[f"s{i}_n"] += n
                totals[f"s{i}_amt"] += amount
    return totals


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
            Column("median_days", _("Median days from creation"), "days"),
        ],
    )
