from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from leakmap.exchange.backups import KIND_NAMES, BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `leakmap backup` into an empty database (stop the server"
        " first); an older backup is migrated after it."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the contents of a database that is not empty",
        )

    def handle(self, *args, file: str, force: bool, **opts):
        try:
            done = restore(file, force=force)
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(
            _("restored %(path)s (%(kind)s) in %(s).1f s")
            % {"path": done.path, "kind": KIND_NAMES[done.kind], "s": done.seconds}
        )
        if done.migrated:
            self.stdout.write(
                _("then applied %(n)s migration(s) the backup was behind")
                % {"n": len(done.migrated)}
            )
