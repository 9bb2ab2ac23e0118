"""owners: per rep — deals, won, lost, open, rates, won amount, cycle, follow-ups, stages reached.

Intuition: one GROUP BY owner over the cohort's deals, each figure a filtered COUNT/SUM/AVG over
the per-deal state (CONTRACT §4: win_rate = won / deals, close_rate = won / (won + lost),
avg_cycle_days = mean of closed_at − created_at over won deals). Queries: stages, the group-by, the owners' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    EVERY_OWNER,
    MONEY_FIELD,
    Column,
    ReportResult,
    TallyOwners,
    deal_states,
    from_cents,
    load_stages,
    lost_q,
    mean_days,
    money,
    open_q,
    owner_key,
    plain_rows,
    register,
    tally_owners,
    usernames,
    whole_sum,
    won_q,
)
from leakmap.analytics.filters import Scope
from leakmap.crm import rules
from leakmap.crm.models import DealTally, WholeSecondsBetween


@dataclass
class OwnerRow:
    owner: str  # username
    owner_name: str
    deals: int
    won: int
    lost: int
    open: int
    win_rate: float | None
    close_rate: float | None
    won_amount: Decimal
    avg_cycle_days: float | None
    avg_follow_ups_per_deal: float | None
    reached: dict[str, int]  # stage key → deals that reached it (open stages, then won)


def reach_keys_of(stages) -> list[tuple[str, int]]:
    """(stage key, order) of the `reached` counts: the open stages, then won."""
    keys = [(s.key, s.order) for s in stages.open]
    if stages.won:
        keys.append((stages.won.key, stages.won.order))
    return keys


def groups_by_filters(scope: Scope, stages) -> list[dict]:
    """Any scope: one GROUP BY owner over the cohort's deals, a filtered COUNT/SUM per figure.
    `cycle_seconds` / `cycle_n`: whole seconds to close summed, and how many, over won deals;
    `r{i}` the deals that reached the i-th step of reach_keys_of, `c{i}` those of them closed
    (won or lost: the diagnosis' close rate after negotiation)."""
    won, lost = won_q(stages), lost_q(stages)
    closed_won = won & Q(st_closed__isnull=False)
    aggs = {
        "deals": Count("id"),
        "won": Count("id", filter=won),
        "lost": Count("id", filter=lost),
        "open": Count("id", filter=open_q(stages)),
        "won_amount": Sum("amount", filter=won, default=Decimal(0), output_field=MONEY_FIELD),
        "cycle_seconds": Sum(WholeSecondsBetween(F("st_closed"), F("created_at")), filter=won),
        "cycle_n": Count("id", filter=closed_won),
        "follow_ups": Sum("st_fu_count"),
    }
    closed = Q(st_stage__in=stages.closed_ids)
    for i, (_key, order) in enumerate(reach_keys_of(stages)):
        aggs[f"r{i}"] = Count("id", filter=Q(st_reached__gte=order))
        aggs[f"c{i}"] = Count("id", filter=closed & Q(st_reached__gte=order))
    return list(deal_states(scope, stages).annotate(o=owner_key()).values("o").annotate(**aggs))


def groups_of_every_deal(stages, owners: TallyOwners = EVERY_OWNER) -> list[dict]:
    """groups_by_filters for every deal as it is now (of the owners given, else of all):
    deals per (owner, stage, reached order) from the deal tally the database keeps, added up
    per owner here (a few thousand rows instead of aggregating every deal: about 200 -> 20 ms
    at a million leads)."""
    won, lost = set(stages.won_ids), set(stages.lost_ids)
    reach = reach_keys_of(stages)
    steps = [(f"r{i}", f"c{i}", order) for i, (_key, order) in enumerate(reach)]
    out: dict[int, dict] = {}
    for owner_id, stage_id, reached, n, cents, follow_ups, cycle, cycle_n in plain_rows(
        owners.of_deals(DealTally.objects.all())
        .values_list("owner_key", "stage_id", "reached_order")
        .annotate(
            deals=whole_sum("n"),
            cents=whole_sum("amount_cents"),
            fu=whole_sum("follow_ups"),
            cyc=whole_sum("cycle_seconds"),
            cyc_n=whole_sum("cycle_n"),
        )
        .filter(deals__gt=0)
        .order_by("owner_key", "stage_id", "reached_order")
    ):
        owner_id = owner_id or None
        g = out.get(owner_id)
        if g is None:
            g = out[owner_id] = {
                "o": owner_id,
                "deals": 0,
                "won": 0,
                "lost": 0,
                "open": 0,
                "won_amount": Decimal(0),
                "cycle_seconds": None,
                "cycle_n": 0,
                "follow_ups": 0,
                **{f"r{i}": 0 for i in range(len(reach))},
                **{f"c{i}": 0 for i in range(len(reach))},
            }
        g["deals"] += n
        g["follow_ups"] += follow_ups or 0
        if stage_id in won:
            g["won"] += n
            g["won_amount"] += from_cents(cents)
            if cycle_n:
                g["cycle_seconds"] = (g["cycle_seconds"] or 0) + cycle
                g["cycle_n"] += cycle_n
        elif stage_id in lost:
            g["lost"] += n
        else:
            g["open"] += n
        closed = stage_id in won or stage_id in lost
        for r_key, c_key, order in steps:
            if reached >= order:
                g[r_key] += n
                if closed:
                    g[c_key] += n
    return list(out.values())


def owner_groups(scope: Scope, stages) -> list[dict]:
    """Per owner id, the figures of the report's rows (see groups_by_filters)."""
    owners = tally_owners(scope)
    if owners is not None:
        return groups_of_every_deal(stages, owners)
    return groups_by_filters(scope, stages)


def owner_rows(grouped: list[dict], stages) -> list[OwnerRow]:
    """The report's rows of owner_groups' groups, biggest won amount first."""
    reach_keys = reach_keys_of(stages)
    names = usernames(g["o"] for g in grouped)
    rows = [
        OwnerRow(
            owner=names[g["o"]][0],
            owner_name=names[g["o"]][1],
            deals=g["deals"],
            won=g["won"],
            lost=g["lost"],
            open=g["open"],
            win_rate=rules.win_rate(g["won"], g["deals"]),
            close_rate=rules.close_rate(g["won"], g["lost"]),
            won_amount=money(g["won_amount"]),
            avg_cycle_days=mean_days(g["cycle_seconds"], g["cycle_n"]),
            avg_follow_ups_per_deal=g["follow_ups"] / g["deals"] if g["deals"] else None,
            reached={key: g[f"r{i}"] for i, (key, _o) in enumerate(reach_keys)},
        )
        for g in grouped
    ]
    rows.sort(key=lambda r: (-r.won_amount, r.owner))
    return rows


@register("owners")
def owners(scope: Scope) -> ReportResult:
    stages = load_stages()
    return ReportResult(
        report="owners",
        as_of=scope.now,
        period=scope.period_json(),
        rows=owner_rows(owner_groups(scope, stages), stages),
        title=_("Sales reps"),
        columns=[
            Column("owner_name", _("Owner")),
            Column("deals", _("Deals"), "int", total=True),
            Column("won", _("Won"), "int", total=True),
            Column("lost", _("Lost"), "int", total=True),
            Column("open", _("Open"), "int", total=True),
            Column("win_rate", _("Win rate"), "rate"),
            Column("close_rate", _("Close rate"), "rate"),
            Column("won_amount", _("Won amount"), "money", total=True),
            Column("avg_cycle_days", _("Average cycle (days)"), "days"),
            Column("avg_follow_ups_per_deal", _("Follow-ups per deal"), "days"),
            Column("reached", _("Reached"), "map"),
        ],
    )
