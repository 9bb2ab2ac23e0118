"""The counting interface: the scope's deals and leads as cells of counts, whatever the storage.

Reports ask for cells and add them up; none of them decides how to count. That choice is made
here, once, from the scope:

- every record as it is now, narrowed at most by who owns it (an owner, a team, what the viewer
  may see): the tallies the database keeps (crm.DealTally, LostTally, LeadTally), a sum over a
  few thousand rows (`base.tally_owners`);
- any other scope (a period, a past date, a source): one GROUP BY over the records, through
  `base.deal_states`, which gives each deal's state at the scope's clock ("now" is the clock at
  the current time, a past date is the same query at that time).

Both ways give the same cells (the same keys, the same sums); tests/analytics/test_counts.py
holds them equal to a plain recount from the records for every kind of scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Q, Sum

from leakmap.analytics.base import (
    EVERY_OWNER,
    MONEY_FIELD,
    DaysBetween,
    Stages,
    deal_states,
    from_cents,
    owner_key,
    plain_rows,
    tally_owners,
    unindexed,
    whole_sum,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm import rules
from leakmap.crm.models import DealTally, Lead, LeadTally, LostTally, WholeSecondsBetween


@dataclass(frozen=True, slots=True)
class DealCell:
    """The scope's deals of one owner in one stage (at the clock) that reached one order."""

    owner_id: int | None
    stage_id: int
    reached: int  # highest non-lost Stage.order reached
    n: int
    amount: Decimal
    follow_ups: int  # done activities, summed (0 when not asked for)
    cycle_seconds: int  # creation to close, summed over the closed deals
    cycle_n: int  # closed deals with a close time


def deal_cells(scope: Scope, stages: Stages, *, follow_ups: bool = False) -> list[DealCell]:
    """The scope's deals per (owner, stage, reached order). `follow_ups` asks for their done
    activities summed too (a count per deal at the clock: left out where nobody reads it)."""
    owners = tally_owners(scope)
    if owners is not None:
        rows = plain_rows(
            owners.of_deals(DealTally.objects.all())
            .values_list("owner_key", "stage_id", "reached_order")
            .annotate(
                n=whole_sum("n"),
                cents=whole_sum("amount_cents"),
                fu=whole_sum("follow_ups"),
                cyc=whole_sum("cycle_seconds"),
                cyc_n=whole_sum("cycle_n"),
            )
            .filter(n__gt=0)
            .order_by()
        )
        return [
            DealCell(
                owner or None,
                stage,
                reached,
                n,
                from_cents(cents),
                (fu or 0) if follow_ups else 0,
                cyc or 0,
                cyc_n or 0,
            )
            for owner, stage, reached, n, cents, fu, cyc, cyc_n in rows
        ]
    closed = Q(st_closed__isnull=False)
    aggs = {
        "n": Count("id"),
        "amt": Sum("amount", default=Decimal(0), output_field=MONEY_FIELD),
        "cyc": Sum(WholeSecondsBetween(F("st_closed"), F("created_at")), filter=closed),
        "cyc_n": Count("id", filter=closed),
    }
    if follow_ups:
        aggs["fu"] = Sum("st_fu_count")
    groups = (
        deal_states(scope, stages)
        .annotate(o=owner_key())
        .values("o", "st_stage_key", "st_reached")
        .annotate(**aggs)
        .order_by()
    )
    return [
        DealCell(
            g["o"],
            g["st_stage_key"],
            g["st_reached"],
            g["n"],
            g["amt"],
            g.get("fu") or 0,
            g["cyc"] or 0,
            g["cyc_n"],
        )
        for g in groups
    ]


@dataclass(frozen=True, slots=True)
class LostCell:
    """The scope's lost deals of one owner and one lost reason that had reached an order."""

    owner_id: int | None
    reason_id: int | None
    n: int
    with_notes: int
    with_competitor: int


def lost_cells(scope: Scope, stages: Stages, *, reached_at_least: int) -> list[LostCell]:
    """The scope's lost deals (at the clock) that had reached the order `reached_at_least`,
    per (owner, lost reason)."""
    owners = tally_owners(scope)
    if owners is not None:
        rows = plain_rows(
            owners.of_deals(
                LostTally.objects.filter(
                    stage_id__in=stages.lost_ids, reached_order__gte=reached_at_least
                )
            )
            .values_list("owner_key", "lost_reason_key")
            .annotate(
                n=whole_sum("n"),
                notes=whole_sum("with_notes"),
                rival=whole_sum("with_competitor"),
            )
            .filter(n__gt=0)
            .order_by()
        )
        return [
            LostCell(owner or None, reason or None, n, notes, rival)
            for owner, reason, n, notes, rival in rows
        ]
    # The reason as `+ 0`: grouped by the plain column, SQLite walks the reason index over
    # every deal for its order.
    rows = plain_rows(
        deal_states(scope, stages)
        .filter(st_stage__in=stages.lost_ids, st_reached__gte=reached_at_least)
        .annotate(o=owner_key(), reason=unindexed("lost_reason_id"))
        .values("o", "reason")
        .annotate(
            n=Count("id"),
            notes=Count("id", filter=~Q(lost_notes="")),
            rival=Count("id", filter=Q(competitor__isnull=False)),
        )
        .values_list("o", "reason", "n", "notes", "rival")
        .order_by()
    )
    return [LostCell(*row) for row in rows]


@dataclass
class StepTotals:
    """Deals and amounts of a set of cells: all, won, and per open stage those that reached it
    (skipping a stage counts as passing it)."""

    n: int
    amount: Decimal
    won_n: int
    won_amount: Decimal
    reached_n: list[int]  # per open stage of the default pipeline, in order
    reached_amount: list[Decimal]


def step_totals(cells: list[DealCell], stages: Stages) -> StepTotals:
    won = set(stages.won_ids)
    orders = [s.order for s in stages.open]
    totals = StepTotals(0, Decimal(0), 0, Decimal(0), [0] * len(orders), [Decimal(0)] * len(orders))
    for c in cells:
        totals.n += c.n
        totals.amount += c.amount
        if c.stage_id in won:
            totals.won_n += c.n
            totals.won_amount += c.amount
        for i, order in enumerate(orders):
            if c.reached >= order:
                totals.reached_n[i] += c.n
                totals.reached_amount[i] += c.amount
    return totals


@dataclass(frozen=True, slots=True)
class LeadCell:
    """The scope's leads of one owner and one source (keys not asked for are None)."""

    owner_id: int | None
    source_id: int | None
    n: int
    converted: int  # converted by the clock (0 when not asked for)
    contacted_fast: int  # first contacted within rules.FIRST_CONTACT_WITHIN, by the clock


LEAD_KEYS = {"owner": ("owner_key", "owner_id"), "source": ("source_key", "source_id")}


def lead_cells(
    scope: Scope,
    *,
    by: tuple[str, ...] = (),
    status: str | None = None,
    conversions: bool = False,
) -> list[LeadCell]:
    """The scope's leads grouped by `by` (a subset of "owner", "source"), of one status if
    given; `conversions` adds how many were converted and first contacted fast by the clock.
    Owners or sources whose leads have all moved on are left out."""
    unknown = set(by) - LEAD_KEYS.keys()
    if unknown:
        raise ValueError(f"lead_cells cannot group by {sorted(unknown)}")
    owners = tally_owners(scope)
    # The tally's converted and contacted flags are as they are now; a clock earlier than one
    # of its times (a record written "in the future" of the clock) must count from the leads.
    if owners is not None and conversions:
        if LeadTally.objects.filter(latest_at__gt=scope.now).exists():
            owners = None
    if owners is not None:
        keys = [LEAD_KEYS[k][0] for k in by]
        tally = owners.of_leads(LeadTally.objects.all())
        if status is not None:
            tally = tally.filter(status=status)
        aggs = {"leads": whole_sum("n")}
        if conversions:
            aggs["converted"] = whole_sum("n", filter=Q(converted=True), default=0)
            aggs["fast"] = whole_sum("n", filter=Q(contacted_within_day=True), default=0)
        groups = (
            tally.values(*keys).annotate(**aggs).order_by() if keys else [tally.aggregate(**aggs)]
        )
        return [
            LeadCell(
                (g["owner_key"] or None) if "owner" in by else None,
                (g["source_key"] or None) if "source" in by else None,
                g["leads"],
                g.get("converted") or 0,
                g.get("fast") or 0,
            )
            for g in groups
            if g["leads"]
        ]
    # Grouped, the leads are read from a covering index in group order (lead_source_cover,
    # lead_owner_cover) rather than looked up row by row from the created_at range; a bare
    # count is answered by that range alone.
    leads = Lead.objects.filter(scope.lead_q(scan=bool(by) or conversions)).order_by()
    if status is not None:
        leads = leads.filter(status=status)
    aggs = {"n": Count("id")}
    if conversions:
        now = scope.now
        aggs["converted"] = Count("id", filter=Q(converted_at__isnull=False, converted_at__lte=now))
        aggs["fast"] = Count("id", filter=rules.first_contacted_fast_q(now))
        leads = leads.annotate(first_contact_days=DaysBetween("first_contacted_at", "created_at"))
    keys = {k: LEAD_KEYS[k][1] for k in by}
    if not keys:
        groups = [leads.aggregate(**aggs)]
    else:
        groups = (
            leads.annotate(**{f"k_{k}": F(col) for k, col in keys.items()})
            .values(*[f"k_{k}" for k in keys])
            .annotate(**aggs)
        )
    return [
        LeadCell(
            g.get("k_owner"),
            g.get("k_source"),
            g["n"],
            g.get("converted") or 0,
            g.get("fast") or 0,
        )
        for g in groups
        if g["n"]
    ]


def lead_count(scope: Scope) -> int:
    """How many leads the scope has."""
    return sum(c.n for c in lead_cells(scope))


def deals_per_source(scope: Scope, stages) -> list[tuple[int | None, int, int, Decimal]]:
    """(source id of the deals' lead, deals, won, won amount) of the cohort's deals that have
    a lead: the deals of the scope's leads (an owner filter is on the lead's owner, who may
    not be the deal's), of those the viewer may see. Every deal now: from the deal tally the
    database keeps. Without a filter on the leads, the deals' own copy of their lead's source
    (a fact the services keep) groups them; with one, the join to the leads."""
    if tally_owners(scope) == EVERY_OWNER:
        won_ids = stages.won_ids
        return [
            (key or None, n, n_won, from_cents(cents))
            for key, n, n_won, cents in DealTally.objects.filter(has_lead=True)
            .values("lead_source_key")
            .annotate(
                deals=whole_sum("n"),
                won=whole_sum("n", filter=Q(stage_id__in=won_ids), default=0),
                cents=whole_sum("amount_cents", filter=Q(stage_id__in=won_ids), default=0),
            )
            .order_by()
            .values_list("lead_source_key", "deals", "won", "cents")
        ]
    won = won_q(stages)
    lead_q = scope.lead_q("lead__")
    by = "lead__source_id" if lead_q else "lead_source_id"
    # Only deals the viewer may see, whoever owns their lead: a manager's team may have
    # handed a lead's deal to another team (and PostgreSQL then reads the team's deals by
    # their owner index, not every deal).
    visible = scope.visible_q(owner_required=True)
    return list(
        deal_states(scope, stages, lead_q & Q(lead__isnull=False) & visible)
        .values(by)
        .annotate(
            n=Count("id"),
            won=Count("id", filter=won),
            won_amount=Sum("amount", filter=won, default=Decimal(0), output_field=MONEY_FIELD),
        )
        .values_list(by, "n", "won", "won_amount")
    )
