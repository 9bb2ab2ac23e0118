"""Every analytics report at /reports/NAME, with the CLI's JSON body and the caller's visibility."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema
from pydantic import BaseModel, ConfigDict, Field

from leakmap.accounts.selectors import visible_users
from leakmap.api.routers.common import ERRORS
from leakmap.api.schemas import Day, Text

router = Router(tags=["reports"])

ReportName = Literal[
    "funnel",
    "owners",
    "sources",
    "lost-reasons",
    "stage-time",
    "stuck",
    "cycle",
    "forecast",
    "weekly",
    "diagnosis",
]

# ReportInputError names the CLI option; the API names its own parameter.
_OPTION_FIELDS = {
    "--owner": "owner",
    "--team": "team",
    "--source": "source",
    "--from": "from",
    "--to": "to",
    "--as-of": "as_of",
    "--no-follow-up-days": "no_follow_up_days",
}


class ReportParams(Schema):
    date_from: Day | None = Field(None, alias="from", description="first cohort day (local)")
    date_to: Day | None = Field(None, alias="to", description="last cohort day (local)")
    as_of: Text(40, 1) | None = Field(
        None, description="ISO 8601; without an offset it is read in the install's time zone"
    )
    owner: Text(150, 1) | None = Field(None, description="username")
    team: Text(100, 1) | None = None
    source: Text(100, 1) | None = None
    no_follow_up_days: int | None = Field(None, ge=1, le=3650, description="stuck only")
    week: Text(8, 1) | None = Field(
        None,
        description="weekly only: the ISO week to review, YYYY-Www (default: the last complete"
        " week before as_of)",
    )


class Period(Schema):
    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str | None


class ReportOut(BaseModel):
    """CONTRACT §5: every body has these keys; some reports add more (by_competitor, …).
    A plain pydantic model: ninja's Schema reads its input through the declared fields only,
    which dropped those extra keys."""

    model_config = ConfigDict(extra="allow")

    report: str
    as_of: str
    period: Period
    rows: list[dict]


def _as_of(value: str | None) -> dt.datetime | None:
    from leakmap.analytics.filters import local_tz

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=local_tz())
        parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ValidationError(
            {"as_of": _("Not a date or time (ISO 8601): %(v)s") % {"v": value}}
        ) from None
    return parsed


def _week(value: str | None, name: str) -> dt.date | None:
    from leakmap.analytics.filters import iso_week

    if value is None:
        return None
    if name != "weekly":
        raise ValidationError({"week": _("week applies only to the weekly report.")})
    try:
        return iso_week(value)
    except ValueError:
        raise ValidationError(
            {"week": _("Not an ISO week (YYYY-Www, e.g. 2026-W05): %(v)s") % {"v": value}}
        ) from None


def _check_visible(user, params: ReportParams) -> None:
    # A name the caller may not see is answered exactly like one that does not exist.
    people = visible_users(user)
    if params.owner and not people.filter(username=params.owner).exists():
        raise ValidationError({"owner": _("Unknown --owner: %(v)s") % {"v": params.owner}})
    if params.team and not user.is_admin and not people.filter(team__name=params.team).exists():
        raise ValidationError({"team": _("Unknown --team: %(v)s") % {"v": params.team}})


REPORT_DESCRIPTION = """The report's CONTRACT §5 body, as `leakmap report NAME --format json` prints it.

Two rates share the key `win_rate` and mean different things:

- **owners** `win_rate` is the **Deal win rate** (商机赢单率): won deals ÷ deals created in the
  period; `close_rate` is won ÷ (won + lost).
- **sources** `win_rate` is the **Lead win rate** (线索赢单率): won deals ÷ leads created in the
  period; `lead_to_deal_rate` is deals from those leads ÷ leads.

Rates are fractions in [0, 1], unrounded. `weekly` reviews the ISO week `week` (default: the
last complete week before `as_of`; weeks start Monday in the install's time zone), compared
over equal lengths."""


@router.get(
    "/reports/{name}",
    response={200: ReportOut, **ERRORS},
    by_alias=True,
    description=REPORT_DESCRIPTION,
)
def report(request, name: ReportName, params: Query[ReportParams]):
    from leakmap.analytics import ReportFilters, ReportInputError, run_report

    user = request.auth
    _check_visible(user, params)
    filters = ReportFilters(
        week=_week(params.week, name),
        date_from=params.date_from,
        date_to=params.date_to,
        as_of=_as_of(params.as_of),
        owner=params.owner,
        team=params.team,
        source=params.source,
        viewer=user,
        no_follow_up_days=params.no_follow_up_days,
    )
    try:
        result = run_report(name, filters)
    except ReportInputError as exc:
        message = str(exc)
        field = next((f for opt, f in _OPTION_FIELDS.items() if opt in message), None)
        raise ValidationError({field or "__all__": message}) from None
    return result.to_json()
