"""forecast: weighted pipeline by expected close month, and how well the probabilities hold up.

Rows (CONTRACT §4): open deals (as of the clock) grouped by the month of expected_close_date
(null month = no date), with Σ amount and Σ amount × stage probability.

`calibration` (body key): for each open stage of the default pipeline, the configured probability
beside the historical win rate of the closed deals that reached it (won / (won + lost)), and the
Brier score of the configured probability over those deals. `brier_score` is the same over every
(closed deal, open stage it reached) pair: mean of (p − outcome)², 0 is perfect; it comes from the
per-stage counts, since Σ(p − y)² = won·(1 − p)² + lost·p².
Queries: stages, the month group-by, the calibration counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import CharField, Count, Func, Sum
from django.utils.translation import gettext as _

from leakmap.analytics.base import (
    MONEY_FIELD,
    Column,
    ReportResult,
    deal_states,
    load_stages,
    money,
    ratio,
    register,
    weighted_amount_expr,
)
from leakmap.analytics.counts import deal_cells
from leakmap.analytics.filters import Scope
from leakmap.crm import rules
from leakmap.crm.models import StageKind


@dataclass
class ForecastRow:
    month: str | None  # YYYY-MM
    deals: int
    pipeline_amount: Decimal
    weighted_amount: Decimal


@dataclass
class CalibrationRow:
    stage: str
    probability: float  # configured, as a fraction
    closed: int  # closed deals that reached the stage
    won: int
    historical_win_rate: float | None
    brier_score: float | None


class YearMonth(Func):
    """'YYYY-MM' of a date column, in SQL on both databases. (TruncMonth is a Python function
    called once per row on SQLite.)"""

    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="substr(%(expressions)s, 1, 7)", **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="to_char(%(expressions)s, 'YYYY-MM')", **extra
        )


@register("forecast")
def forecast(scope: Scope) -> ReportResult:
    stages = load_stages()
    open_deals = deal_states(scope, stages, kind=StageKind.OPEN)
    months = (
        open_deals.annotate(m=YearMonth("expected_close_date"))
        .values("m")
        .annotate(
            n=Count("id"),
            amt=Sum("amount", default=Decimal(0), output_field=MONEY_FIELD),
            weighted=Sum(
                weighted_amount_expr(stages), default=Decimal(0), output_field=MONEY_FIELD
            ),
        )
    )
    rows = sorted(
        (
            ForecastRow(
                g["m"],
                g["n"],
                money(g["amt"]),
                money(Decimal(g["weighted"]) / 100),
            )
            for g in months
        ),
        key=lambda r: (r.month is None, r.month or ""),
    )
    counts = calibration_counts(scope, stages)
    calibration = []
    sq_sum, pairs = 0.0, 0
    for i, s in enumerate(stages.open):
        w, lo, p = counts[f"w{i}"], counts[f"l{i}"], s.probability / 100
        sq = w * (1 - p) ** 2 + lo * p**2
        sq_sum, pairs = sq_sum + sq, pairs + w + lo
        calibration.append(
            CalibrationRow(s.key, p, w + lo, w, rules.close_rate(w, lo), ratio(sq, w + lo))
        )
    return ReportResult(
        report="forecast",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={"calibration": calibration, "brier_score": ratio(sq_sum, pairs)},
        title=_("Weighted forecast"),
        columns=[
            Column("month", _("Expected close month")),
            Column("deals", _("Deals"), "int", total=True),
            Column("pipeline_amount", _("Pipeline"), "money", total=True),
            Column("weighted_amount", _("Weighted"), "money", total=True),
        ],
    )


def calibration_counts(scope: Scope, stages) -> dict[str, int]:
    """w{i} / l{i}: the won and the lost deals that reached open stage i, from the scope's deal
    cells (analytics.counts)."""
    won, lost = set(stages.won_ids), set(stages.lost_ids)
    counts = {f"{k}{i}": 0 for i in range(len(stages.open)) for k in "wl"}
    for c in deal_cells(scope, stages):
        kind = "w" if c.stage_id in won else "l" if c.stage_id in lost else None
        if kind:
            for i, s in enumerate(stages.open):
                if c.reached >= s.order:
                    counts[f"{kind}{i}"] += c.n
    return counts
