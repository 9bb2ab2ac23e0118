"""owners: per rep — deals, won, lost, open, rates, won amount, cycle, follow-ups, stages reached.

Intuition: one GROUP BY owner over the cohort's deals, each figure a filtered COUNT/SUM/AVG over
the per-deal state (CONTRACT §4: win_rate = won / deals, close_rate = won / (won + lost),
avg_cycle_days = mean of closed_at − created_at over won deals). Queries: stages, the group-by, the owners' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Avg, Count, F, Q, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    DaysBetween,
    ReportResult,
    days,
    deal_states,
    load_stages,
    lost_q,
    money,
    open_q,
    owner_key,
    ratio,
    register,
    usernames,
    won_q,
)
from leakmap.analytics.filters import Scope


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


@register("owners")
def owners(scope: Scope) -> ReportResult:
    stages = load_stages()
    won, lost = won_q(stages), lost_q(stages)
    aggs = {
        "deals": Count("id"),
        "won": Count("id", filter=won),
        "lost": Count("id", filter=lost),
        "open": Count("id", filter=open_q(stages)),
        "won_amount": Sum("amount", filter=won, default=Decimal(0), output_field=MONEY_FIELD),
        "cycle": Avg(DaysBetween(F("st_closed"), F("created_at")), filter=won),
        "follow_ups": Avg("st_fu_count"),
    }
    reach_keys = [(s.key, s.order) for s in stages.open]
    if stages.won:
        reach_keys.append((stages.won.key, stages.won.order))
    for i, (_key, order) in enumerate(reach_keys):
        aggs[f"r{i}"] = Count("id", filter=Q(st_reached__gte=order))
    grouped = list(deal_states(scope, stages).annotate(o=owner_key()).values("o").annotate(**aggs))
    names = usernames(g["o"] for g in grouped)
    rows = [
        OwnerRow(
            owner=names[g["o"]][0],
            owner_name=names[g["o"]][1],
            deals=g["deals"],
            won=g["won"],
            lost=g["lost"],
            open=g["open"],
            win_rate=ratio(g["won"], g["deals"]),
            close_rate=ratio(g["won"], g["won"] + g["lost"]),
            won_amount=money(g["won_amount"]),
            avg_cycle_days=days(g["cycle"]),
            avg_follow_ups_per_deal=None if g["follow_ups"] is None else float(g["follow_ups"]),
            reached={key: g[f"r{i}"] for i, (key, _o) in enumerate(reach_keys)},
        )
        for g in grouped
    ]
    rows.sort(key=lambda r: (-r.won_amount, r.owner))
    return ReportResult(
        report="owners",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
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
