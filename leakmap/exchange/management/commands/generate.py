from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from leakmap.exchange.generator import DEFAULT_UNTIL, generate, local_now


class Command(BaseCommand):
    help = "Write a synthetic, realistic data set as import CSVs (deterministic for a seed)."

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, required=True, help="number of leads")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--out", default=".", help="directory for the CSV files")
        parser.add_argument(
            "--until",
            default=DEFAULT_UNTIL.isoformat(),
            help="last day of the six months the data covers (default %(default)s)",
        )

    def handle(self, *args, leads: int, seed: int, out: str, until: str, **opts):
        if leads < 1:
            raise CommandError(_("--leads: must be at least 1"), returncode=2)
        try:
            until_date = dt.date.fromisoformat(until)
        except ValueError as exc:
            raise CommandError(
                _("--until: value %(v)r is not a date (YYYY-MM-DD)") % {"v": until}, returncode=2
            ) from exc
        try:
            counts = generate(out, leads=leads, seed=seed, until=until_date, now=local_now())
        except OSError as exc:
            raise CommandError(f"--out: {exc}", returncode=2) from exc
        for kind, n in counts.items():
            self.stdout.write(f"{kind}: {n}")
