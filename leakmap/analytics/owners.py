"""owners: per rep — deals, won, lost, open, rates, won amount, cycle, follow-ups, stages reached.

Intuition: one GROUP BY owner over the cohort's deals, each figure a filtered COUNT/SUM/AVG over
the per-deal state (CONTRACT §4: win_rate = won / deals, close_rate = won / (won + lost),
avg_cycle_days = mean of closed_at − created_at over won deals). Queries: stages, the group-by, the owners' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _

from leakmap.analytics import labels
from leakmap.analytics.base import (
    Column,
    ReportResult,
    load_stages,
    mean_days,
    money,
    register,
    usernames,
)
from leakmap.analytics.counts import deal_cells
from leakmap.analytics.filters import Scope
from leakmap.crm import rules


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


@dataclass
class OwnerGroup:
    """One owner's deals of the scope, added up from the deal cells (analytics.counts)."""

    owner_id: int | None
    # Per step of reach_keys_of: the deals that reached it, and those of them closed (won or
    # lost: the diagnosis' close rate after negotiation).
    reached: list[int]
    closed_after: list[int]
    deals: int = 0
    won: int = 0
    lost: int = 0
    open: int = 0
    won_amount: Decimal = Decimal(0)
    cycle_seconds: int | None = None  # whole seconds to close, summed over won deals
    cycle_n: int = 0  # won deals with a close time
    follow_ups: int = 0  # done activities


def owner_groups(scope: Scope, stages) -> list[OwnerGroup]:
    """The scope's deals per owner, for the report's rows and the diagnosis."""
    won, lost = set(stages.won_ids), set(stages.lost_ids)
    orders = [order for _key, order in reach_keys_of(stages)]
    out: dict[int | None, OwnerGroup] = {}
    for c in deal_cells(scope, stages, follow_ups=True):
        g = out.get(c.owner_id)
        if g is None:
            g = out[c.owner_id] = OwnerGroup(c.owner_id, [0] * len(orders), [0] * len(orders))
        g.deals += c.n
        g.follow_ups += c.follow_ups
        if c.stage_id in won:
            g.won += c.n
            g.won_amount += c.amount
            if c.cycle_n:
                g.cycle_seconds = (g.cycle_seconds or 0) + c.cycle_seconds
                g.cycle_n += c.cycle_n
        elif c.stage_id in lost:
            g.lost += c.n
        else:
            g.open += c.n
        closed = c.stage_id in won or c.stage_id in lost
        for i, order in enumerate(orders):
            if c.reached >= order:
                g.reached[i] += c.n
                if closed:
                    g.closed_after[i] += c.n
    return list(out.values())


def owner_rows(grouped: list[OwnerGroup], stages) -> list[OwnerRow]:
    """The report's rows of owner_groups' groups, biggest won amount first."""
    reach_keys = reach_keys_of(stages)
    names = usernames(g.owner_id for g in grouped)
    rows = [
        OwnerRow(
            owner=names[g.owner_id][0],
            owner_name=names[g.owner_id][1],
            deals=g.deals,
            won=g.won,
            lost=g.lost,
            open=g.open,
            win_rate=rules.win_rate(g.won, g.deals),
            close_rate=rules.close_rate(g.won, g.lost),
            won_amount=money(g.won_amount),
            avg_cycle_days=mean_days(g.cycle_seconds, g.cycle_n),
            avg_follow_ups_per_deal=g.follow_ups / g.deals if g.deals else None,
            reached={key: g.reached[i] for i, (key, _o) in enumerate(reach_keys)},
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
            Column(
                "win_rate",
                str(labels.DEAL_WIN_RATE),
                "rate",
                hint=str(labels.DEAL_WIN_RATE_FORMULA),
            ),
            Column("close_rate", _("Close rate"), "rate", hint=str(labels.CLOSE_RATE_FORMULA)),
            Column("won_amount", _("Won amount"), "money", total=True),
            Column("avg_cycle_days", _("Average cycle (days)"), "days"),
            Column("avg_follow_ups_per_deal", _("Follow-ups per deal"), "days"),
            Column("reached", _("Reached"), "map"),
        ],
    )
