"""`leakmap report NAME [--from D] [--to D] [--as-of T] [--owner U] [--team T] [--source S]
[--format table|json|csv] [--week YYYY-Www]` — thin over analytics.run_report and
analytics.render. `--week` picks the weekly review's ISO week (default: the last complete
week before the clock)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.analytics.filters import ReportFilters, ReportInputError, iso_week, local_tz
from leakmap.analytics.render import FORMATS, render


def parse_date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            _("%(option)s: not a date (YYYY-MM-DD): %(value)s")
            % {"option": option, "value": value},
            returncode=2,
        ) from None


def parse_as_of(value: str | None) -> dt.datetime | None:
    """ISO 8601; without an offset it is read in TIME_ZONE; a bare date means 00:00 local."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            _("--as-of: not a date or time (ISO 8601): %(value)s") % {"value": value},
            returncode=2,
        ) from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=local_tz())
    return parsed


def parse_week(value: str | None, report: str) -> dt.date | None:
    if value is None:
        return None
    if report != "weekly":
        raise CommandError(_("--week applies only to the weekly report."), returncode=2)
    try:
        return iso_week(value)
    except ValueError:
        raise CommandError(
            _("--week: not an ISO week (YYYY-Www, e.g. 2026-W05): %(value)s") % {"value": value},
            returncode=2,
        ) from None


class Command(BaseCommand):
    help = "Print a report: funnel, owners, sources, lost-reasons, stage-time, stuck, cycle, forecast, weekly, diagnosis"

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--from", dest="date_from")
        parser.add_argument("--to", dest="date_to")
        parser.add_argument("--as-of", dest="as_of")
        parser.add_argument("--owner")
        parser.add_argument("--team")
        parser.add_argument("--source")
        parser.add_argument("--format", default="table")
        parser.add_argument(
            "--week",
            help="weekly: the ISO week to review, YYYY-Www (default: the last complete week)",
        )
        parser.add_argument(
            "--no-follow-up-days",
            dest="no_follow_up_days",
            type=int,
            help="stuck: days without a follow-up (default LEAKMAP_NO_FOLLOW_UP_DAYS)",
        )

    def handle(self, *args, **opts):
        from leakmap.analytics import run_report

        fmt = opts["format"]
        if fmt not in FORMATS:
            raise CommandError(
                _("--format must be one of %(f)s, not %(v)s") % {"f": ", ".join(FORMATS), "v": fmt},
                returncode=2,
            )
        filters = ReportFilters(
            date_from=parse_date(opts["date_from"], "--from"),
            date_to=parse_date(opts["date_to"], "--to"),
            as_of=parse_as_of(opts["as_of"]),
            owner=opts["owner"],
            team=opts["team"],
            source=opts["source"],
            viewer=None,
            no_follow_up_days=opts["no_follow_up_days"],
            week=parse_week(opts["week"], opts["name"]),
        )
        try:
            result = run_report(opts["name"], filters)
        except ReportInputError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(render(result, fmt), ending="")
