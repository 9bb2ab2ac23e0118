"""weekly: this week against last week and the 4-week average, with the change marked.

Weeks start Monday 00:00 in settings.TIME_ZONE. "This week" runs from the Monday of the clock's
week to the clock (to date); "last week" is the full week before; the 4-week average is the mean
of the four full weeks before this week (last week included). --from/--to do not apply (the
weeks are the period, reported as such); owner/team/source/viewer do.

Rows: new leads, deals created, entries into each open stage and into won/lost (a deal entering
a stage that week, from its history), won and lost amounts (deals that closed that week and are
still closed so at the clock). change = this − last; direction up / down / flat. Body keys:
`by_owner` (per rep: leads, deals, won amount this week and last) and `top_lost_reasons`
(this week's, by amount, 5 at most).

Intuition: the week bounds are computed in Python as UTC datetimes; every figure is a COUNT/SUM
filtered on `created_at`/`at`/`closed_at` within those bounds, each read from its own index
range. Queries: stages, leads, deals created, deals closed, stage entries, leads by owner, deals
created and closed by owner, lost reasons.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    ReportResult,
    deal_states,
    history_in_scope,
    load_stages,
    lost_q,
    money,
    register,
    won_q,
)
from leakmap.analytics.filters import Scope, local_midnight, local_tz
from leakmap.crm.models import Lead, StageChange

WEEKS = 5  # this week + the four before it


@dataclass
class WeeklyRow:
    metric: str
    label: str
    this_week: float | Decimal
    last_week: float | Decimal
    avg_4w: float | Decimal
    change: float | Decimal  # this − last
    change_vs_avg: float | Decimal  # this − 4-week average
    direction: str  # up | down | flat (this against last)


@dataclass
class OwnerWeek:
    owner: str
    leads_this_week: int
    leads_last_week: int
    deals_this_week: int
    deals_last_week: int
    won_amount_this_week: Decimal
    won_amount_last_week: Decimal


@dataclass
class ReasonWeek:
    key: str | None
    deals: int
    amount: Decimal


def week_bounds(now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[(start, end)] for this week (to `now`) and the four full weeks before, newest first."""
    local = now.astimezone(local_tz())
    monday = local_midnight(local.date() - dt.timedelta(days=local.weekday()))
    bounds = [(monday, now)]
    for i in range(1, WEEKS):
        start = local_midnight(monday.date() - dt.timedelta(weeks=i))
        end = local_midnight(monday.date() - dt.timedelta(weeks=i - 1))
        bounds.append((start, end))
    return bounds


def _in(field: str, bounds: tuple[dt.datetime, dt.datetime], last_inclusive: bool) -> Q:
    start, end = bounds
    upper = f"{field}__lte" if last_inclusive else f"{field}__lt"
    return Q(**{f"{field}__gte": start, upper: end})


def _weekly_aggs(field: str, bounds, agg, prefix: str, extra_q: Q | None = None) -> dict:
    out = {}
    for i, b in enumerate(bounds):
        q = _in(field, b, i == 0)
        if extra_q is not None:
            q &= extra_q
        out[f"{prefix}{i}"] = agg(q)
    return out


def _row(metric: str, label: str, values: list, is_money: bool) -> WeeklyRow:
    this, last = values[0], values[1]
    avg = sum(values[1:], Decimal(0) if is_money else 0) / (WEEKS - 1)
    if is_money:
        this, last, avg = money(this), money(last), money(avg)
    else:
        avg = float(avg)
    change = this - last
    return WeeklyRow(
        metric,
        label,
        this,
        last,
        avg,
        change,
        (this - avg) if is_money else float(this) - avg,
        "up" if change > 0 else "down" if change < 0 else "flat",
    )


@register("weekly")
def weekly(scope: Scope) -> ReportResult:
    stages = load_stages()
    # The weeks are the period: drop --from/--to from the cohort.
    scope = dataclasses.replace(
        scope, filters=dataclasses.replace(scope.filters, date_from=None, date_to=None)
    )
    bounds = week_bounds(scope.now)
    count = lambda q: Count("id", filter=q)  # noqa: E731
    amount = lambda q: Sum("amount", filter=q, default=Decimal(0), output_field=MONEY_FIELD)  # noqa: E731

    # Only rows inside the five weeks can count: bounding them lets the created_at / at
    # indexes skip the rest of history.
    first = bounds[-1][0]
    leads = (
        Lead.objects.filter(scope.lead_q(), created_at__gte=first)
        .order_by()
        .aggregate(**_weekly_aggs("created_at", bounds, count, "n"))
    )
    # Deals created in the weeks and deals closed in them, each from its own index range (one
    # query with `created OR closed` made SQLite scan every deal).
    states = deal_states(scope, stages)
    created = states.filter(created_at__gte=first)
    closed = states.filter(st_closed__gte=first)
    d = {
        **created.aggregate(**_weekly_aggs("created_at", bounds, count, "n")),
        **closed.aggregate(
            **_weekly_aggs("st_closed", bounds, amount, "won", won_q(stages)),
            **_weekly_aggs("st_closed", bounds, amount, "lost", lost_q(stages)),
        ),
    }
    # Every stage named, so that SQLite seeks the window in each stage's part of the
    # (to_stage, at) index instead of reading the whole index.
    in_window = history_in_scope(
        StageChange.objects.filter(
            to_stage_id__in=list(stages.by_id), at__gte=first, at__lte=scope.now
        ),
        scope,
    )
    entries = {
        g["to_stage_id"]: g
        for g in in_window.order_by()
        .values("to_stage_id")
        .annotate(
            **_weekly_aggs("at", bounds, lambda q: Count("deal_id", filter=q, distinct=True), "n")
        )
    }
    rng = range(WEEKS)
    rows = [
        _row("new_leads", _("New leads"), [leads[f"n{i}"] for i in rng], False),
        _row("deals_created", _("Deals created"), [d[f"n{i}"] for i in rng], False),
    ]
    closing = [s for s in stages.by_id.values() if s.id in stages.closed_ids]
    for s in [*stages.open, *closing]:
        if s in closing and (s.key in {r.metric.split(":", 1)[-1] for r in rows[2:]}):
            # several pipelines: one row per won/lost key, summed
            continue
        ids = [x.id for x in closing if x.key == s.key] if s in closing else [s.id]
        values = [sum(entries.get(sid, {}).get(f"n{i}", 0) for sid in ids) for i in rng]
        rows.append(
            _row(f"entered:{s.key}", _("Entered %(stage)s") % {"stage": s.label}, values, False)
        )
    rows.append(_row("won_amount", _("Won amount"), [d[f"won{i}"] for i in rng], True))
    rows.append(_row("lost_amount", _("Lost amount"), [d[f"lost{i}"] for i in rng], True))

    # Per rep, this week and last.
    two = bounds[:2]
    lead_owner = {
        g["owner__username"]: g
        for g in Lead.objects.filter(
            scope.lead_q(), owner__isnull=False, created_at__gte=two[-1][0]
        )
        .order_by()
        .values("owner__username")
        .annotate(**_weekly_aggs("created_at", two, count, "n"))
    }
    deal_owner: dict[str, dict] = {}
    for part in (
        created.filter(created_at__gte=two[-1][0])
        .values("owner__username")
        .annotate(**_weekly_aggs("created_at", two, count, "n")),
        closed.filter(st_closed__gte=two[-1][0])
        .values("owner__username")
        .annotate(**_weekly_aggs("st_closed", two, amount, "won", won_q(stages))),
    ):
        for g in part:
            deal_owner.setdefault(g["owner__username"], {}).update(g)
    by_owner = []
    for owner in sorted(set(lead_owner) | set(deal_owner)):
        lo = lead_owner.get(owner, {})
        do = deal_owner.get(owner, {})
        ow = OwnerWeek(
            owner,
            lo.get("n0", 0),
            lo.get("n1", 0),
            do.get("n0", 0),
            do.get("n1", 0),
            money(do.get("won0")),
            money(do.get("won1")),
        )
        if any(v for v in dataclasses.astuple(ow)[1:]):
            by_owner.append(ow)

    reasons = [
        ReasonWeek(g["lost_reason__name"], g["n"], money(g["amount"]))
        for g in closed.filter(lost_q(stages) & _in("st_closed", bounds[0], True))
        .values("lost_reason__name")
        .annotate(n=Count("id"), amount=Sum("amount", default=Decimal(0), output_field=MONEY_FIELD))
        .order_by("-amount", "lost_reason__name")[:5]
    ]
    start = bounds[-1][0].astimezone(local_tz()).date()
    return ReportResult(
        report="weekly",
        as_of=scope.now,
        period={
            "from": start.isoformat(),
            "to": scope.now.astimezone(local_tz()).date().isoformat(),
        },
        rows=rows,
        extra={
            "weeks": [{"start": b[0].astimezone(local_tz()).date().isoformat()} for b in bounds],
            "by_owner": by_owner,
            "top_lost_reasons": reasons,
        },
        title=_("This week"),
        columns=[
            Column("label", _("Metric")),
            Column("this_week", _("This week")),
            Column("last_week", _("Last week")),
            Column("avg_4w", _("4-week average")),
            Column("change", _("Change")),
            Column("direction", ""),
        ],
    )
