"""`leakmap rules run [--as-of T]`: evaluate the workflow rules once."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from leakmap.automation.rules import run_rules


def parse_as_of(value: str) -> dt.datetime:
    """ISO 8601; without an offset it is read in TIME_ZONE, and a bare date means 00:00."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise CommandError(
            f"--as-of {value!r}: not an ISO 8601 time (e.g. 2026-03-01T09:00+08:00)", returncode=2
        ) from exc
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


class Command(BaseCommand):
    help = "Evaluate the workflow rules once (running it twice creates nothing new)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="run")
        run = sub.add_parser("run", help="evaluate every active rule once")
        run.add_argument(
            "--as-of",
            dest="as_of",
            metavar="T",
            help="evaluate as if the clock read T (ISO 8601); default now",
        )

    def handle(self, *args, action: str, as_of: str | None = None, **opts):
        when = parse_as_of(as_of) if as_of else None
        result = run_rules(as_of=when)
        stamp = timezone.localtime(result.as_of).isoformat(timespec="seconds")
        for f in result.firings:
            actions = ", ".join(f.actions) or "-"
            step = f"/{f.step}" if f.step else ""
            self.stdout.write(
                f"{f.rule}{step}  {f.record_type}#{f.record_id}  {f.summary}  [{actions}]"
            )
        self.stdout.write(f"{len(result.firings)} fired as of {stamp}")
        if result.errors:
            # Logged with their tracebacks; the run's other firings stand.
            self.stderr.write(f"{result.errors} firing(s) failed and will be retried next run")
