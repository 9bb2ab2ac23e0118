"""weekly: one week against the week before and the 4-week average, with the change marked.

Weeks start Monday 00:00 in settings.TIME_ZONE. The reviewed week ("this week" in the body) is
the ISO week the filters name (`week`), by default the last complete week before the clock. Every
week is compared over the same length: a complete week with complete weeks, and a week the clock
is still in (chosen explicitly) with the same first days and hours of each week before it, so a
Tuesday morning is never set against a whole week. "Last week" is the week before the reviewed
one; the 4-week average is the mean of the four weeks before it (last week included).
--from/--to do not apply (the week is the period, reported as such); owner/team/source/viewer do.

Rows: new leads, deals created, entries into each open stage and into won/lost (a deal entering
a stage that week, from its history), won and lost amounts (deals that closed that week and are
still closed so at the clock). change = this − last; direction up / down / flat. Body keys:
`weeks` (start, end and whether complete, newest first), `by_owner` (per rep: leads, deals, won
amount this week and last) and `top_lost_reasons` (the reviewed week's, by amount, 5 at most).

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

from leakmap.analytics import labels
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
from leakmap.analytics.filters import (
    ReportInputError,
    Scope,
    iso_week_label,
    local_midnight,
    local_tz,
)
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


def last_complete_week(now: dt.datetime) -> dt.date:
    """The Monday of the last week that ended before `now` (local time)."""
    local = now.astimezone(local_tz()).date()
    return local - dt.timedelta(days=local.weekday() + 7)


def week_bounds(
    now: dt.datetime, week: dt.date | None = None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """[(start, end)] for the reviewed week and the four before it, newest first, all of the
    same length: the whole week, or, while the clock is inside it, the part up to the clock."""
    monday = week if week is not None else last_complete_week(now)
    monday -= dt.timedelta(days=monday.weekday())
    start = local_midnight(monday)
    if start > now:
        raise ReportInputError(
            _("The week of %(week)s has not started yet.") % {"week": monday.isoformat()}
        )
    length = min(local_midnight(monday + dt.timedelta(weeks=1)), now) - start
    bounds = []
    for i in range(WEEKS):
        begin = local_midnight(monday - dt.timedelta(weeks=i))
        bounds.append((begin, begin + length))
    return bounds


def _in(field: str, bounds: tuple[dt.datetime, dt.datetime], now: dt.datetime) -> Q:
    start, end = bounds
    # A week cut at the clock includes the clock's own instant, as every report does.
    upper = f"{field}__lte" if end == now else f"{field}__lt"
    return Q(**{f"{field}__gte": start, upper: end})


def _weekly_aggs(field: str, bounds, now, agg, prefix: str, extra_q: Q | None = None) -> dict:
    out = {}
    for i, b in enumerate(bounds):
        q = _in(field, b, now)
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
    bounds = week_bounds(scope.now, scope.filters.week)
    count = lambda q: Count("id", filter=q)  # noqa: E731
    amount = lambda q: Sum("amount", filter=q, default=Decimal(0), output_field=MONEY_FIELD)  # noqa: E731

    # Only rows inside the five weeks can count: bounding them lets the created_at / at
    # indexes skip the rest of history.
    first = bounds[-1][0]
    leads = (
        Lead.objects.filter(scope.lead_q(), created_at__gte=first)
        .order_by()
        .aggregate(**_weekly_aggs("created_at", bounds, scope.now, count, "n"))
    )
    # Deals created in the weeks and deals closed in them, each from its own index range (one
    # query with `created OR closed` made SQLite scan every deal).
    states = deal_states(scope, stages)
    created = states.filter(created_at__gte=first)
    closed = states.filter(st_closed__gte=first)
    d = {
        **created.aggregate(**_weekly_aggs("created_at", bounds, scope.now, count, "n")),
        **closed.aggregate(
            **_weekly_aggs("st_closed", bounds, scope.now, amount, "won", won_q(stages)),
            **_weekly_aggs("st_closed", bounds, scope.now, amount, "lost", lost_q(stages)),
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
            **_weekly_aggs(
                "at", bounds, scope.now, lambda q: Count("deal_id", filter=q, distinct=True), "n"
            )
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
        .annotate(**_weekly_aggs("created_at", two, scope.now, count, "n"))
    }
    deal_owner: dict[str, dict] = {}
    for part in (
        created.filter(created_at__gte=two[-1][0])
        .values("owner__username")
        .annotate(**_weekly_aggs("created_at", two, scope.now, count, "n")),
        closed.filter(st_closed__gte=two[-1][0])
        .values("owner__username")
        .annotate(**_weekly_aggs("st_closed", two, scope.now, amount, "won", won_q(stages))),
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
        for g in closed.filter(lost_q(stages) & _in("st_closed", bounds[0], scope.now))
        .values("lost_reason__name")
        .annotate(n=Count("id"), amount=Sum("amount", default=Decimal(0), output_field=MONEY_FIELD))
        .order_by("-amount", "lost_reason__name")[:5]
    ]
    week_start, week_end = bounds[0]
    complete = week_end - week_start == dt.timedelta(weeks=1)
    # The last day in the reviewed week: its Sunday, or the clock's day while it runs.
    last_day = (week_end - dt.timedelta(microseconds=1)).astimezone(local_tz()).date()
    return ReportResult(
        report="weekly",
        as_of=scope.now,
        period={
            "from": week_start.astimezone(local_tz()).date().isoformat(),
            "to": last_day.isoformat(),
        },
        rows=rows,
        extra={
            "week": iso_week_label(week_start.astimezone(local_tz()).date()),
            "weeks": [
                {
                    "start": b[0].astimezone(local_tz()).date().isoformat(),
                    "end": b[1].astimezone(local_tz()).isoformat(),
                    "complete": complete,
                }
                for b in bounds
            ],
            "by_owner": by_owner,
            "top_lost_reasons": reasons,
        },
        title=_("Weekly review"),
        columns=[
            Column("label", _("Metric")),
            Column("this_week", str(labels.WEEK)),
            Column("last_week", str(labels.WEEK_BEFORE)),
            Column("avg_4w", str(labels.AVERAGE_4W)),
            Column("change", str(labels.CHANGE)),
            Column("direction", ""),
        ],
    )
