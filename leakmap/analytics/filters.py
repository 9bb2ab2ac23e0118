"""What a report is asked about: the cohort period, the clock, and who/what to narrow it to.

`ReportFilters` is what every entry point builds (CLI options, web query string, API params);
`Scope` is the same after its names were looked up, and turns it into Q objects for leads and
deals. Dates are local dates in settings.TIME_ZONE; they become UTC datetime bounds here, in
Python, and reach the database only as query parameters.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import DateTimeField, F, Func, Q
from django.db.models.lookups import GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.accounts.models import Role, Team, User
from leakmap.accounts.selectors import owner_filter, team_ids
from leakmap.crm.models import Source


class Unindexed(Func):
    """The same value, but no longer something an index can serve, so that the planner scans
    (a narrow covering index, or the table) instead of walking this column's index with a row
    lookup per match: for queries that read most rows. SQLite: unary `+`. PostgreSQL: an
    integer gets `+ 0` (grouped reads of most deals otherwise walk its index); a datetime
    range is left as it is, the planner weighs that itself."""

    def __init__(self, expression, output_field):
        super().__init__(expression, output_field=output_field)

    def as_sql(self, compiler, connection, **extra):
        integer = self.output_field.get_internal_type().endswith("IntegerField")
        template = "(%(expressions)s + 0)" if integer else "%(expressions)s"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="+%(expressions)s", **extra)


class ReportInputError(ValueError):
    """A user's mistake in a report's filters (unknown name, bad date range): exit 2 / HTTP 400."""


@dataclass(frozen=True)
class ReportFilters:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    as_of: dt.datetime | None = None
    owner: str | None = None  # username
    team: str | None = None  # team name
    source: str | None = None  # source name
    viewer: User | None = None  # None = everything (the CLI); else what that user may see
    # stuck: days without a follow-up before an open deal counts as stuck (None = settings)
    no_follow_up_days: int | None = None
    # Pages that show only the top of a long list (stuck deals) ask for that many rows; the
    # report then says how many there are in ReportResult.total_rows. None = every row (the
    # CLI, the API and the downloads, as the contract's bodies have them).
    row_limit: int | None = None
    # weekly: the Monday (local) of the ISO week to review; None = the last complete week
    # before the clock. The other reports ignore it.
    week: dt.date | None = None


def local_tz() -> dt.tzinfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def iso_week(value: str) -> dt.date:
    """The Monday of an ISO week written `YYYY-Www` (what `<input type="week">` sends); ValueError
    otherwise."""
    year, sep, week = value.strip().upper().partition("-W")
    if not sep or len(year) != 4 or not (1 <= len(week) <= 2):
        raise ValueError(value)
    return dt.date.fromisocalendar(int(year), int(week), 1)


def iso_week_label(monday: dt.date) -> str:
    """`YYYY-Www` of the week holding `monday`."""
    year, week, _day = monday.isocalendar()
    return f"{year}-W{week:02d}"


PERIOD_PRESETS = (
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "year_to_date",
)


def preset_period(name: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of a named period around `today` (a local date): this/last
    calendar month or quarter, or the year to `today`. KeyError for an unknown name."""
    quarter_start = dt.date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    month_start = today.replace(day=1)
    if name == "this_month":
        return month_start, _month_end(month_start)
    if name == "last_month":
        start = (month_start - dt.timedelta(days=1)).replace(day=1)
        return start, month_start - dt.timedelta(days=1)
    if name == "this_quarter":
        return quarter_start, _month_end(_add_months(quarter_start, 2))
    if name == "last_quarter":
        start = _add_months(quarter_start, -3)
        return start, quarter_start - dt.timedelta(days=1)
    if name == "year_to_date":
        return dt.date(today.year, 1, 1), today
    raise KeyError(name)


def _add_months(first_of_month: dt.date, months: int) -> dt.date:
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(first_of_month: dt.date) -> dt.date:
    return _add_months(first_of_month, 1) - dt.timedelta(days=1)


def local_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(local_tz()).date()


def local_midnight(day: dt.date) -> dt.datetime:
    """00:00 of `day` in the reporting time zone, as an aware datetime."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=local_tz())


@dataclass(frozen=True)
class Scope:
    """Filters with their names resolved to ids, plus the evaluation clock."""

    filters: ReportFilters
    now: dt.datetime  # as_of, or the current time
    historical: bool  # True when --as-of was given: history after `now` is ignored
    owner_id: int | None
    team_id: int | None
    source_id: int | None
    # A manager viewer's team ids (accounts.selectors.team_ids), asked once per report.
    viewer_team: tuple[int, ...] | None = None
    # What a report works out once from the scope and asks for again (analytics.base.
    # tally_owners); a copy made with dataclasses.replace starts empty.
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def start(self) -> dt.datetime | None:
        f = self.filters.date_from
        return local_midnight(f) if f else None

    @property
    def end(self) -> dt.datetime | None:
        """Exclusive upper bound: the local midnight after `date_to`."""
        t = self.filters.date_to
        return local_midnight(t + dt.timedelta(days=1)) if t else None

    def _common(
        self, prefix: str, source_field: str, *, owner_required: bool = False, scan: bool = False
    ) -> Q:
        q = Q()
        created = F(f"{prefix}created_at")
        if scan:
            created = Unindexed(created, DateTimeField())
        if self.start is not None:
            q &= Q(GreaterThanOrEqual(created, self.start))
        if self.end is not None:
            q &= Q(LessThan(created, self.end))
        if self.historical:
            # A record created after the clock does not exist yet.
            q &= Q(LessThanOrEqual(created, self.now))
        if self.owner_id is not None:
            q &= Q(**{f"{prefix}owner_id": self.owner_id})
        if self.team_id is not None:
            q &= Q(**{f"{prefix}owner__team_id": self.team_id})
        if self.source_id is not None:
            q &= Q(**{f"{prefix}{source_field}": self.source_id})
        return q & self.visible_q(prefix, owner_required=owner_required)

    def visible_q(self, prefix: str = "", *, owner_required: bool = False) -> Q:
        """The records the viewer may see (accounts.selectors.owner_filter); Q() without one."""
        if self.filters.viewer is None:
            return Q()
        return owner_filter(
            self.filters.viewer,
            f"{prefix}owner",
            owner_required=owner_required,
            team=self.viewer_team,
        )

    def deal_q(self, prefix: str = "", *, scan: bool = False) -> Q:
        """Cohort deals (created in the period) narrowed by owner/team/source/viewer. `scan`:
        for a query that reads a large share of the deals, the creation bounds are kept from
        the created_at index, so the planner scans a covering index instead of looking up each
        matching row."""
        return self._common(prefix, "source_id", owner_required=True, scan=scan)

    def lead_q(self, prefix: str = "", *, scan: bool = False) -> Q:
        """Cohort leads (created in the period) narrowed the same way; `scan` as for deal_q."""
        return self._common(prefix, "source_id", scan=scan)

    def period_json(self) -> dict:
        f = self.filters
        return {
            "from": f.date_from.isoformat() if f.date_from else None,
            "to": f.date_to.isoformat() if f.date_to else None,
        }


def resolve(filters: ReportFilters) -> Scope:
    """Look up the names (one small query each, only for the filters given)."""
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ReportInputError(
            _("--from %(f)s is after --to %(t)s.")
            % {"f": filters.date_from.isoformat(), "t": filters.date_to.isoformat()}
        )
    if filters.as_of is not None and timezone.is_naive(filters.as_of):
        raise ReportInputError(_("--as-of needs a time zone."))
    if filters.no_follow_up_days is not None and filters.no_follow_up_days < 1:
        raise ReportInputError(
            _("--no-follow-up-days must be at least 1, not %(n)s.")
            % {"n": filters.no_follow_up_days}
        )

    def lookup(model, field: str, value: str | None, label: str) -> int | None:
        if value is None or value == "":
            return None
        pk = model.objects.filter(**{field: value}).values_list("pk", flat=True).first()
        if pk is None:
            raise ReportInputError(
                _("Unknown %(filter)s: %(value)s") % {"filter": label, "value": value}
            )
        return pk

    return Scope(
        filters=filters,
        now=filters.as_of or timezone.now(),
        historical=filters.as_of is not None,
        owner_id=lookup(User, "username", filters.owner, "--owner"),
        team_id=lookup(Team, "name", filters.team, "--team"),
        source_id=lookup(Source, "name", filters.source, "--source"),
        viewer_team=tuple(team_ids(viewer))
        if (viewer := filters.viewer) is not None and viewer.role == Role.MANAGER
        else None,
    )
