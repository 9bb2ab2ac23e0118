"""Shared machinery of the reports: the registry, the result type, the pipeline's stages, the
per-deal state (now or as of a past moment), portable day arithmetic and percentiles in SQL.

Every report reads deals through `deal_states(scope)`, which annotates the same names on both
paths, so a report's query does not care whether it runs on today's facts or on history:

    st_stage     the stage the deal is in         st_entered   when it entered that stage
    st_reached   highest non-lost Stage.order      st_closed    when it closed (null if open)
    st_lost_at   stage it was lost from            st_last_fu   last follow-up (done activity)
    st_fu_count  number of follow-ups              st_stage_key st_stage, to group by

Without --as-of these are the per-deal facts that services keep on Deal (cheap columns). With
--as-of T they are read from the history entry whose stay covers T (at <= T < left_at, one join)
and from the activities done <= T, following the fallback rules of services.deals_refresh_facts
for deals without history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Greatest, NullIf

from leakmap.analytics.filters import ReportFilters, Scope, Unindexed, resolve
from leakmap.crm.models import (
    SECONDS_PER_CENTIDAY,
    Activity,
    Deal,
    Stage,
    StageChange,
    StageKind,
    WholeSecondsBetween,
)

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MONEY_FIELD = DecimalField(max_digits=20, decimal_places=2)


def money(value: Any) -> Decimal:
    return (Decimal(value) if value is not None else ZERO).quantize(CENT)


def from_cents(cents: int) -> Decimal:
    """Money from a whole number of cents (the deal tally keeps amounts so: exact sums)."""
    return (Decimal(cents) / 100).quantize(CENT)


def ratio(num: float | int | Decimal | None, den: float | int | Decimal | None) -> float | None:
    """num / den as an unrounded float, None where the divisor is 0 (CONTRACT §5)."""
    if num is None or not den:
        return None
    return float(num) / float(den)


def money_ratio(num: Decimal | None, den: int | Decimal | None) -> Decimal | None:
    if num is None or not den:
        return None
    return (Decimal(num) / Decimal(den)).quantize(CENT)


def days(value: float | None) -> float | None:
    """Days as computed in SQL (whole seconds / 86400), rounded so float noise from the two
    databases' arithmetic never shows as a different figure."""
    return None if value is None else round(float(value), 4)


# --- Result and registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str  # attribute of the row dataclass
    label: str  # already translated
    kind: str = "text"  # text | int | money | rate | days | map
    total: bool = False  # summed in the table's totals line
    hint: str = ""  # how the figure is worked out, shown on hover (already translated)


@dataclass
class ReportResult:
    report: str
    as_of: dt.datetime
    period: dict  # {"from": "YYYY-MM-DD" | None, "to": ...}
    rows: list
    extra: dict = field(default_factory=dict)  # additional body keys (by_competitor, …)
    columns: list[Column] = field(default_factory=list)
    title: str = ""
    total_rows: int | None = None  # how many rows there are when row_limit cut them (not JSON)

    def to_json(self) -> dict:
        """Exactly the CONTRACT §5 body: money as numbers with 2 decimals, rates unrounded."""
        with gc_paused():
            return self._body()

    def _body(self) -> dict:
        body = {
            "report": self.report,
            "as_of": self.as_of.isoformat(),
            "period": dict(self.period),
            "rows": [to_jsonable(r) for r in self.rows],
        }
        for key, value in self.extra.items():
            body[key] = to_jsonable(value)
        return body


_PLAIN = (str, int, float, bool, type(None))
_ROW_FIELDS: dict[type, tuple[str, ...]] = {}


def to_jsonable(value: Any) -> Any:
    # Exact-type checks first: a report can have tens of thousands of rows (stuck deals), and
    # this runs once per value.
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Decimal:
        return float(value.quantize(CENT))
    json_row = getattr(kind, "json_row", None)
    if json_row is not None:
        return json_row(value)
    names = _ROW_FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _ROW_FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        out = {}
        for name in names:
            v = getattr(value, name)
            out[name] = v if type(v) in _PLAIN else to_jsonable(v)
        return out
    if isinstance(value, Decimal):
        return float(value.quantize(CENT))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


ReportFn = Callable[[Scope], ReportResult]


class Registry(Mapping):
    """Report name → function taking a resolved Scope. Open: another module (diagnosis) registers
    itself with `@register("diagnosis")`. The report modules are imported on first use, because
    this package is imported by Django before models are ready."""

    MODULES = (
        "funnel",
        "owners",
        "sources",
        "lost_reasons",
        "stage_time",
        "stuck",
        "cycle",
        "forecast",
        "weekly",
        "diagnosis",  # optional: registered when that module exists
    )

    def __init__(self) -> None:
        self._reports: dict[str, ReportFn] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[ReportFn], ReportFn]:
        def deco(fn: ReportFn) -> ReportFn:
            self._reports[name] = fn
            return fn

        return deco

    def load(self) -> None:
        if self._loaded:
            return
        import importlib
        import importlib.util

        for module in self.MODULES:
            dotted = f"leakmap.analytics.{module}"
            if importlib.util.find_spec(dotted) is not None:
                importlib.import_module(dotted)
        self._loaded = True

    def __getitem__(self, name: str) -> ReportFn:
        self.load()
        return self._reports[name]

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(self._reports)

    def __len__(self) -> int:
        self.load()
        return len(self._reports)


REPORTS = Registry()
register = REPORTS.register


def run_report(name: str, filters: ReportFilters) -> ReportResult:
    """Run report `name` with `filters`. Raises ReportInputError for a user's mistake (unknown
    report, owner, team or source; bad period)."""
    from django.utils.translation import gettext as _

    from leakmap.analytics.filters import ReportInputError

    if name not in REPORTS:
        raise ReportInputError(
            _("Unknown report %(name)s; choose one of: %(names)s")
            % {"name": name, "names": ", ".join(REPORTS)}
        )
    with gc_paused():
        return REPORTS[name](resolve(filters))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector paused while a report builds (or serialises) its rows.

    A report can make tens of thousands of rows (every stuck deal), and each allocation
    batch triggers a collection that walks all of them again. The rows hold no reference cycles, so
    reference counting frees them all the same; the collector runs again right after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- Stages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageInfo:
    id: int
    key: str
    label: str
    order: int
    probability: int
    kind: str
    sla_days: int | None


@dataclass(frozen=True)
class Stages:
    """The default pipeline's stages (the funnel's steps) and the closed stages of every
    pipeline, fetched in one query so reports can name stage ids as plain parameters."""

    open: list[StageInfo]  # default pipeline, in order
    by_id: dict[int, StageInfo]  # every stage of every pipeline
    won_ids: list[int]
    lost_ids: list[int]
    first_open_id: int | None
    won: StageInfo | None  # the default pipeline's won stage

    @property
    def closed_ids(self) -> list[int]:
        return self.won_ids + self.lost_ids

    def probability_case(self) -> Case:
        """Stage probability of the deal's (as-of) stage, as an SQL CASE over st_stage."""
        return Case(
            *[When(st_stage=s.id, then=Value(s.probability)) for s in self.by_id.values()],
            default=Value(0),
            output_field=IntegerField(),
        )


def load_stages() -> Stages:
    rows = list(Stage.objects.select_related("pipeline").order_by("pipeline_id", "order"))
    default = next((s.pipeline for s in rows if s.pipeline.is_default), None)
    if default is None and rows:
        default = min((s.pipeline for s in rows), key=lambda p: p.name)
    infos = {
        s.pk: StageInfo(s.pk, s.key, s.label, s.order, s.probability, s.kind, s.sla_days)
        for s in rows
    }
    open_ = [
        infos[s.pk]
        for s in rows
        if default is not None and s.pipeline_id == default.pk and s.kind == StageKind.OPEN
    ]
    return Stages(
        open=open_,
        by_id=infos,
        won_ids=[s.pk for s in rows if s.kind == StageKind.WON],
        lost_ids=[s.pk for s in rows if s.kind == StageKind.LOST],
        first_open_id=open_[0].id if open_ else None,
        won=next(
            (
                infos[s.pk]
                for s in rows
                if default and s.pipeline_id == default.pk and s.kind == StageKind.WON
            ),
            None,
        ),
    )


# --- Per-deal state ------------------------------------------------------------------------------


def deal_states(
    scope: Scope,
    stages: Stages,
    q: Q | None = None,
    *,
    kind: str | None = None,
) -> QuerySet[Deal]:
    """Cohort deals (or the deals matching `q`) with the st_* annotations (see the module
    docstring); `kind` (a StageKind) keeps only the deals in a stage of that kind at the clock."""
    if q is None:
        q = scope.deal_q(scan=True)
    elif scope.historical:
        q &= Q(created_at__lte=scope.now)
    qs = Deal.objects.filter(q).order_by()
    if kind is not None:
        ids = [s.id for s in stages.by_id.values() if s.kind == kind]
        if scope.historical:
            return _states_at(qs, scope, stages).filter(st_stage__in=ids)
        # Now: by the plain stage column, so that the deal_stage_cover (open) and
        # deal_lost_cover (lost) indexes hold exactly these deals with the columns read.
        qs = qs.filter(stage_id__in=ids)
    if not scope.historical:
        # `+ 0` keeps SQLite's planner from driving a filter on the stage through the stage
        # index: the reports aggregate most deals, and a scan plus a sort is ~3x faster at 300k
        # deals than 300k rowid lookups. st_stage_key is the plain column, for grouping: by
        # (owner, stage, reached order) SQLite then walks the covering deal_report_cover index
        # in that order with no sort (the cohort's creation bounds are kept from the created_at
        # index, Scope.deal_q(scan=True), so that it does).
        return qs.annotate(
            st_stage=unindexed("stage_id"),
            st_stage_key=F("stage_id"),
            st_reached=F("reached_order"),
            st_entered=Coalesce(F("stage_entered_at"), F("created_at")),
            st_closed=F("closed_at"),
            st_lost_at=F("lost_at_stage_id"),
            st_last_fu=F("last_follow_up_at"),
            st_fu_count=F("follow_up_count"),
        )
    return _states_at(qs, scope, stages)


def _states_at(qs: QuerySet[Deal], scope: Scope, stages: Stages) -> QuerySet[Deal]:
    """The st_* annotations as of scope.now, from the history (see deal_states)."""
    t = scope.now
    # The entry whose stay covers T: at <= T < left_at (left_at null: still there). The stays of
    # a deal's entries tile its history without overlap (left_at is the next entry's `at`), so
    # this joins at most one row per deal, and every st_* below reads its columns: one index
    # lookup per deal instead of a correlated subquery per column and per use.
    qs = qs.alias(
        stay_at_t=FilteredRelation(
            "stage_changes",
            condition=Q(stage_changes__at__lte=t)
            & (Q(stage_changes__left_at__isnull=True) | Q(stage_changes__left_at__gt=t)),
        )
    )
    earliest = StageChange.objects.filter(deal=OuterRef("pk")).order_by("at", "id")
    follow_ups = (
        Activity.objects.filter(deal=OuterRef("pk"), done_at__isnull=False, done_at__lte=t)
        .values("deal")
        .annotate(n=Count("id"), last=Max("done_at"))
    )
    stay_stage, stay_at = F("stay_at_t__to_stage_id"), F("stay_at_t__at")
    # The highest non-lost order among the entries up to T: the stay's reached_before, or its
    # own stage's order when that is higher and not a lost stage. Null when no such entry.
    stay_order = Case(
        *[
            When(stay_at_t__to_stage_id=s.id, then=Value(s.order))
            for s in stages.by_id.values()
            if s.kind != StageKind.LOST
        ],
        default=Value(0),
        output_field=IntegerField(),
    )
    # No history row at or before T: the deal counts as in its first recorded stage (or, with no
    # history at all, its current stage) since created_at, as services.deals_refresh_facts does.
    qs = qs.annotate(
        st_stage=Coalesce(
            stay_stage,
            Subquery(earliest.values("to_stage_id")[:1]),
            F("stage_id"),
            output_field=IntegerField(),
        ),
    )
    closed = Q(st_stage__in=stages.closed_ids)
    lost = Q(st_stage__in=stages.lost_ids)
    return qs.annotate(
        st_stage_key=F("st_stage"),
        st_reached=Coalesce(
            NullIf(Greatest(F("stay_at_t__reached_before"), stay_order), Value(0)),
            F("reached_order"),
        ),
        st_entered=Coalesce(stay_at, F("created_at")),
        st_closed=Case(
            When(closed, then=Coalesce(stay_at, F("closed_at"))),
            default=Value(None, output_field=DateTimeField()),
            output_field=DateTimeField(),
        ),
        st_lost_at=Case(
            When(
                lost,
                then=Coalesce(
                    F("stay_at_t__from_stage_id"),
                    F("lost_at_stage_id"),
                    Value(stages.first_open_id),
                    output_field=IntegerField(),
                ),
            ),
            default=Value(None),
            output_field=IntegerField(),
        ),
        st_last_fu=Subquery(follow_ups.values("last")[:1]),
        st_fu_count=Coalesce(Subquery(follow_ups.values("n")[:1]), Value(0)),
    )


def plain_rows(qs: QuerySet) -> list[tuple]:
    """A values_list queryset's rows as the database driver returns them, without Django's
    per-row converters: for queries of tens of thousands of rows of plain numbers and ids.
    A filter that can match nothing (`__in=[]`: a report narrowed to owners the viewer may
    not see) gives no rows, as Django's own iteration does, instead of EmptyResultSet."""
    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:
        return []
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def history_in_scope(entries: QuerySet[StageChange], scope: Scope) -> QuerySet[StageChange]:
    """History entries narrowed to the scope's deals, as `deal IN (the scope's deals)`: joined
    to the deals instead, SQLite scans the whole history and looks up each entry's deal row."""
    narrowed = scope.deal_q()
    if not narrowed:
        return entries
    return entries.filter(deal_id__in=Deal.objects.filter(narrowed).values("pk"))


def whole_sum(field: str, **extra) -> Cast:
    """SUM of an integer column, as an integer on both databases (PostgreSQL sums a bigint
    into a numeric, which arrives as a Decimal). For the tallies' counts and sums."""
    return Cast(Sum(field, **extra), BigIntegerField())


def unindexed(column: str) -> Unindexed:
    """An integer column no index can serve (filters.Unindexed). For queries that read most
    rows (see deal_states)."""
    return Unindexed(F(column), IntegerField())


def group_key(scope: Scope, column: str) -> F | Unindexed:
    """A column of deal_states to group by. Now, the plain column: the covering indexes of the
    deals now (deal_lost_cover, deal_report_cover) hold their groups in order. As of a past
    moment, `+ 0`: grouped on a plain column, SQLite walks that column's index and looks up
    every deal's row, slower than reading the deals and sorting them."""
    return unindexed(column) if scope.historical else F(column)


def owner_key() -> F:
    """Group by owner id; names come in a second query. Plain, not `+ 0`: the covering indexes
    deal_report_cover and lead_owner_cover start with owner_id, so SQLite groups in their
    order with no sort."""
    return F("owner_id")


def usernames(ids) -> dict[int, tuple[str, str]]:
    from leakmap.accounts.models import User

    return {
        pk: (username, display or username)
        for pk, username, display in User.objects.filter(pk__in=list(ids)).values_list(
            "pk", "username", "display_name"
        )
    }


def won_q(stages: Stages) -> Q:
    return Q(st_stage__in=stages.won_ids)


def lost_q(stages: Stages) -> Q:
    return Q(st_stage__in=stages.lost_ids)


def open_q(stages: Stages) -> Q:
    return ~Q(st_stage__in=stages.closed_ids)


def weighted_amount_expr(stages: Stages) -> ExpressionWrapper:
    """amount × probability (an integer percent); divided by 100 in Python, exactly."""
    return ExpressionWrapper(F("amount") * stages.probability_case(), output_field=MONEY_FIELD)


# --- Day arithmetic and percentiles --------------------------------------------------------------


class DaysBetween(WholeSecondsBetween):
    """(end − start) in days: the whole seconds (crm.models.WholeSecondsBetween, also what the
    generated stay columns hold) over 86400, so SQLite and PostgreSQL agree exactly."""

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = super().as_sqlite(compiler, connection, **extra)
        return f"({sql} / 86400.0)", params

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = super().as_postgresql(compiler, connection, **extra)
        return f"(CAST({sql} AS double precision) / 86400.0)", params


def at(value: dt.datetime) -> Value:
    return Value(value, output_field=DateTimeField())


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float | None
    median: float | None
    p90: float | None


def _union(parts: list, columns: str) -> tuple[str, list]:
    """UNION ALL of querysets or ready (sql, params) pairs, each exposing `columns`."""
    sqls, params = [], []
    for i, qs in enumerate(parts):
        sql, p = qs if isinstance(qs, tuple) else qs.order_by().query.sql_with_params()
        sqls.append(f"SELECT {columns} FROM ({sql}) AS part{i}")
        params.extend(p)
    return " UNION ALL ".join(sqls), params


def grouped_stats(parts: list[QuerySet]) -> dict[Any, Stats]:
    """n, mean, median, p90 of `v` per group `g`.

    `parts` are values-querysets (or (sql, params) pairs) with the two columns g, v, glued with
    UNION ALL (so several differently-shaped sources can feed one group). Constant group keys
    are values we choose, never user input.
    """
    if not parts:
        return {}
    inner, params = _union(parts, "g, v")
    with temporary_values(inner, params, "g, v") as table:
        return stats_of_table(table)


@contextmanager
def temporary_values(inner: str, params: list, columns: str) -> Iterator[str]:
    """The rows of `inner` (non-null v) in a temporary table private to this connection,
    dropped afterwards. On SQLite the rows go in sorted by (g, v), so their rowids are ranks:
    the one sort a median needs, done once for every statistic read from the table."""
    table = f"lm_values_{uuid.uuid4().hex[:12]}"
    order = " ORDER BY g, v" if connection.vendor == "sqlite" else ""
    with connection.cursor() as cur:
        cur.execute(
            f"CREATE TEMPORARY TABLE {table} AS SELECT {columns} FROM ({inner}) AS base"
            f" WHERE v IS NOT NULL{order}",
            params,
        )
        try:
            yield table
        finally:
            cur.execute(f"DROP TABLE {table}")


def mean_days(total_seconds, n: int) -> float | None:
    """The mean of n stays from their exact sum in whole seconds, the same arithmetic whichever
    way the sum was read (a float sum of days could round the 4th decimal differently)."""
    return days(int(total_seconds) / 86400 / n) if n else None


def order_ranks(n: int) -> tuple[int, int, int]:
    """The 1-based ranks of n sorted values that every report's statistics read: the one or two
    middle values (the median is their mean) and the nearest-rank p90, ceil(0.9 n)."""
    return (n + 1) // 2, (n + 2) // 2, (9 * n + 9) // 10


def stats_at_ranks(
    n: int, total_seconds, day_at: Callable[[int], float], *, p90: bool = True
) -> Stats:
    """Stats of n values from their whole seconds summed and `day_at(rank)`, the value in days
    at an order_ranks rank: the same arithmetic however the ranks were found."""
    low, high, p90_rank = order_ranks(n)
    return Stats(
        n,
        mean_days(total_seconds, n),
        days((day_at(low) + day_at(high)) / 2),
        days(day_at(p90_rank)) if p90 else None,
    )


def truncated_bucket(seconds: int, size: int) -> int:
    """The bucket of `size` seconds a value falls in, truncated toward zero as SQL's integer
    division of the generated bucket columns is (only a negative value can tell the two
    ways of rounding apart)."""
    q = abs(seconds) // size
    return q if seconds >= 0 else -q


def _seconds_of_v() -> str:
    """The whole seconds a column v of days (DaysBetween: seconds / 86400) stands for, exactly."""
    integer = "INTEGER" if connection.vendor == "sqlite" else "bigint"
    return f"CAST(ROUND(v * 86400) AS {integer})"


def stats_of_table(table: str) -> dict[Any, Stats]:
    """n, mean, median (the mean of the middle one or two values) and p90 (nearest rank,
    the ceil(0.9 n)-th value) of v per g, from a table made by temporary_values."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # percentile_cont(0.5) is the mean of the two middle values; percentile_disc(0.9)
            # the nearest-rank p90.
            cur.execute(
                f"SELECT g, COUNT(*), SUM({_seconds_of_v()}), percentile_cont(0.5) WITHIN GROUP"
                f" (ORDER BY v), percentile_disc(0.9) WITHIN GROUP (ORDER BY v) FROM {table}"
                f" GROUP BY g"
            )
            return {
                g: Stats(int(n), mean_days(total, n), days(median), days(p90))
                for g, n, total, median, p90 in cur.fetchall()
            }
        # SQLite: rows are stored in (g, v) order, so the k-th value of group g (1-based) has
        # rowid first(g) + k - 1: the order statistics are a handful of rowid lookups.
        cur.execute(
            f"SELECT g, COUNT(*), SUM({_seconds_of_v()}), MIN(rowid) FROM {table} GROUP BY g"
        )
        groups = cur.fetchall()
        wanted = {}
        for _g, n, _mean, first in groups:
            for k in order_ranks(n):
                wanted[first + k - 1] = None
        if wanted:
            ids = list(wanted)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                cur.execute(
                    f"SELECT rowid, v FROM {table} WHERE rowid IN ({', '.join(['%s'] * len(part))})",
                    part,
                )
                wanted.update(cur.fetchall())
        return {
            g: stats_at_ranks(int(n), total, lambda k, first=first: wanted[first + k - 1])
            for g, n, total, first in groups
        }


def km_curves(parts: list[QuerySet]) -> dict[Any, list[tuple[float, int, int]]]:
    """Per group g: [(t, events, total)] with t in hundredths of a day, from values-querysets with
    g, v (days) and e (1 = left the stage, 0 = still there: censored). Aggregated in SQL; the
    product-limit estimate is then a walk over these few hundred points per group."""
    if not parts:
        return {}
    inner, params = _union(parts, "g, v, e")
    # Hundredths of a day from the whole seconds v stands for (v is seconds / 86400), in integer
    # arithmetic, so a stay of exactly k hundredths is never put in bucket k − 1 by float error;
    # the same buckets as the generated StageChange.stay_centidays.
    bucket = f"({_seconds_of_v()} / {SECONDS_PER_CENTIDAY})"
    out: dict[Any, list[tuple[float, int, int]]] = {}
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT g, {bucket} AS t, SUM(e), COUNT(*) FROM ({inner}) AS base"
            f" WHERE v IS NOT NULL GROUP BY g, {bucket} ORDER BY g, t",
            params,
        )
        for g, t, events, total in cur.fetchall():
            out.setdefault(g, []).append((int(t) / 100, int(events), int(total)))
    return out


def km_median(points: list[tuple[float, int, int]]) -> float | None:
    """Kaplan–Meier median: the first time the survival estimate drops to 0.5 or below. None
    when it never does (too many deals still in the stage to tell)."""
    at_risk = sum(total for _t, _e, total in points)
    survival = 1.0
    for t, events, total in points:
        if events and at_risk:
            survival *= 1 - events / at_risk
            if survival <= 0.5 + 1e-12:
                return t
        at_risk -= total
    return None


def every_deal_now(scope: Scope) -> bool:
    """True when the report covers every deal as it is now (no filter, no --as-of): then the
    deals' own facts, grouped or kept in order by the report indexes, are its figures."""
    return not scope.historical and not scope.deal_q()


@dataclass(frozen=True)
class TallyOwners:
    """The rows of the tallies the database keeps (crm.LeadTally, DealTally, LostTally) that
    make up a scope: their owner keys (0: nobody), or None for every row."""

    deals: frozenset[int] | None
    leads: frozenset[int] | None

    def of_deals(self, tally: QuerySet) -> QuerySet:
        return tally if self.deals is None else tally.filter(owner_key__in=sorted(self.deals))

    def of_leads(self, tally: QuerySet) -> QuerySet:
        return tally if self.leads is None else tally.filter(owner_key__in=sorted(self.leads))


EVERY_OWNER = TallyOwners(deals=None, leads=None)


def tally_owners(scope: Scope) -> TallyOwners | None:
    """When the scope is every lead and deal as they are now, narrowed at most by who owns
    them (--owner, --team, what the viewer may see), the tallies' rows of those owners are its
    figures: a manager's team then reads a few hundred tally rows instead of grouping its
    share of a million leads. None for any other scope (a period, a source, --as-of)."""
    if "tally_owners" not in scope.memo:
        scope.memo["tally_owners"] = _tally_owners(scope)
    return scope.memo["tally_owners"]


def _tally_owners(scope: Scope) -> TallyOwners | None:
    from leakmap.accounts.models import User
    from leakmap.accounts.selectors import sees_unassigned, visible_users

    if scope.historical or scope.start is not None or scope.end is not None:
        return None
    if scope.source_id is not None:
        return None
    if not scope.deal_q():
        return EVERY_OWNER
    users = User.objects.all()
    if scope.owner_id is not None:
        users = users.filter(pk=scope.owner_id)
    if scope.team_id is not None:
        users = users.filter(team_id=scope.team_id)
    viewer = scope.filters.viewer
    if viewer is not None:
        seen = scope.viewer_team if scope.viewer_team is not None else visible_users(viewer)
        users = users.filter(pk__in=seen)
    owners = frozenset(users.values_list("pk", flat=True))
    # Unassigned leads are in the scope unless an owner or a team is asked for, or the viewer
    # may not see them (Scope.lead_q); deals always have an owner.
    unassigned = (
        scope.owner_id is None
        and scope.team_id is None
        and (viewer is None or sees_unassigned(viewer))
    )
    return TallyOwners(deals=owners, leads=owners | {0} if unassigned else owners)


def whole_company_now(scope: Scope) -> bool:
    """every_deal_now, and no history entry after the clock, so the facts the database keeps
    sorted on the history (the stage_stay_sorted and stage_reach_sorted indexes) hold exactly
    the report's observations (a stay's end is always some entry's start)."""
    if not every_deal_now(scope):
        return False
    newest = StageChange.objects.filter(to_stage=OuterRef("pk")).order_by("-at").values("at")[:1]
    future = Stage.objects.annotate(newest=Subquery(newest)).filter(newest__gt=scope.now)
    return not future.exists()


class SortedBuckets:
    """Values in whole seconds, most known only as counts per bucket (the values stay in an
    index kept in (bucket, seconds) order), some at hand (`extra`), and `zeros` more values of
    0 known by their count, with the ranks their statistics need: the median's one or two
    middle values and the nearest-rank p90.

    `bucket_of(seconds)` must be the bucket the database put the same value in. A statistic is
    read exactly from its bucket's values (`stats(counted_in)`), so nothing is ever sorted but
    one bucket.
    """

    def __init__(
        self,
        counted: dict[int, int],
        extra: list[int],
        total_seconds: int,
        bucket_of: Callable[[int], int],
        *,
        zeros: int = 0,
        p90: bool = True,
    ):
        self.zeros = zeros
        self.bucket_of = bucket_of
        self.n = sum(counted.values()) + len(extra) + zeros
        self.total_seconds = total_seconds
        # The extra values are counted per bucket at C speed; a bucket's own values are picked
        # out only for the few buckets a wanted rank falls in (stats), never filed per bucket.
        self.extra = extra
        self.extra_buckets = list(map(bucket_of, extra))
        extra_n = Counter(self.extra_buckets)
        if zeros:
            extra_n[bucket_of(0)] = extra_n.get(bucket_of(0), 0) + zeros
        # (bucket, counted, extra) for every bucket, ascending
        self.buckets = [
            (b, counted.get(b, 0), extra_n.get(b, 0))
            for b in sorted(counted.keys() | extra_n.keys())
        ]
        # 1-based ranks of the two middle values and of the nearest-rank p90, each → (its
        # bucket, how many values lie in the buckets before), from one walk of the buckets.
        n = self.n
        self.p90 = p90
        low, high, p90_rank = order_ranks(n)
        ranks = {low, high, p90_rank} if p90 else {low, high}
        self.where: dict[int, tuple[int, int]] = {}
        todo, seen = (sorted(ranks) if n else []), 0
        for b, fin, ext in self.buckets:
            while todo and todo[0] <= seen + fin + ext:
                self.where[todo.pop(0)] = (b, seen)
            seen += fin + ext

    def rank_buckets(self) -> set[int]:
        """The buckets whose counted values must be read to give the wanted ranks exactly."""
        return {b for b, _before in self.where.values()}

    def stats(self, counted_in: Callable[[int], list[int]]) -> Stats | None:
        """counted_in(bucket): that bucket's counted values in seconds, in any order."""
        if not self.n:
            return None

        def kth(rank: int) -> float:
            b, before = self.where[rank]
            runs = [(v, 1) for v in counted_in(b)]
            runs += [
                (v, 1) for v, vb in zip(self.extra, self.extra_buckets, strict=True) if vb == b
            ]
            if self.zeros and self.bucket_of(0) == b:
                runs.append((0, self.zeros))
            for value, times in sorted(runs):
                before += times
                if before >= rank:
                    return value / 86400
            raise AssertionError(f"bucket {b} holds fewer values than its counts")

        return stats_at_ranks(self.n, self.total_seconds, kth, p90=self.p90)


def won_cycle_stats(stages: Stages, *, p90: bool = True) -> Stats | None:
    """n, mean, median and p90 days from creation to close of every won deal now, as
    stats_of_table gives them, from the deal_cycle_sorted index (Deal.cycle_seconds, computed by
    the database, in order per stage): a count and sum, then a walk to each rank."""
    won = Deal.objects.filter(stage_id__in=stages.won_ids, cycle_seconds__isnull=False)
    totals = won.aggregate(n=Count("id"), total=Sum("cycle_seconds"))
    n = totals["n"]
    if not n:
        return None
    # (One won stage is the usual pipeline; with several, the database sorts their deals.)
    ordered = won.order_by("cycle_seconds").values_list("cycle_seconds", flat=True)
    low, high, p90_rank = order_ranks(n)
    at_rank = dict(zip(range(low, high + 1), ordered[low - 1 : high], strict=True))
    if p90:
        at_rank[p90_rank] = ordered[p90_rank - 1]
    return stats_at_ranks(n, totals["total"], lambda k: at_rank[k] / 86400, p90=p90)
