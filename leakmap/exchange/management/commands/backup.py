from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from leakmap.exchange.backups import KIND_NAMES, BackupError, backup


class Command(BaseCommand):
    help = (
        "Write a consistent copy of the whole database to FILE while the server runs"
        " (SQLite: the online backup API; PostgreSQL: pg_dump's custom format)."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file: str, **opts):
        try:
            done = backup(file)
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(
            _("backup written: %(path)s (%(kind)s, %(mb).1f MB) in %(s).1f s")
            % {
                "path": done.path,
                "kind": KIND_NAMES[done.kind],
                "mb": done.size / 1e6,
                "s": done.seconds,
            }
        )
