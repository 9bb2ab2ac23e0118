from __future__ import annotations

import gc
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.exchange.columns import KINDS
from leakmap.exchange.importers import IMPORTERS
from leakmap.exchange.readers import FileError, check_header, open_table

# Files above this size show a progress bar even when stderr is not a terminal (logs of long
# batch jobs); below it only an interactive terminal gets one.
LARGE_FILE_BYTES = 20 * 1024 * 1024


# SQLite page cache for the import's connection: 512 MiB (the default is 64 MiB).
SQLITE_IMPORT_CACHE_KIB = 512 * 1024


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Import users, leads, deals, stage-history, activities or spend from .csv or .xlsx."
    # The system checks import every URLconf and API router (about a second per run), which
    # nothing here needs; `leakmap check` and the server still run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(KINDS))
        parser.add_argument("file")
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and count, write nothing"
        )

    def handle(self, *args, kind: str, file: str, dry_run: bool, **opts):
        try:
            table = open_table(file)
            index = check_header(kind, table)
        except FileError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        importer = IMPORTERS[kind](table, index)
        # The importer holds many small objects alive (seen ids, a batch, grouped history); the
        # cyclic collector would rescan them all every few thousand allocations, which made a
        # large import slower with every batch. Nothing here creates garbage cycles.
        if connection.vendor == "sqlite":
            # A big import inserts into indexes in random key order (e-mail, phone, external
            # ids); a page cache large enough to hold them avoids re-reading pages from disk.
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with transaction.atomic():
                with self._progress(table, kind) as tick, bulk.background_writes():
                    importer.run(progress=tick)
                if importer.errors or dry_run:
                    raise _Rollback
        except _Rollback:
            pass
        except FileError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        finally:
            table.close()
            if gc_was_enabled:
                gc.enable()

        if importer.errors:
            for line in importer.errors:
                self.stderr.write(line)
            raise CommandError(
                _("%(n)s bad row(s) in %(f)s; nothing was imported")
                % {"n": len(importer.bad_rows), "f": file},
                returncode=2,
            )
        if not dry_run:
            bulk.vacuum_after_import()
        self._summary(kind, importer, dry_run)

    def _summary(self, kind, importer, dry_run):
        s = importer.summary()
        if kind == "stage-history":
            line = _("%(kind)s: %(rows)s rows, history of %(deals)s deals replaced") % {
                "kind": kind,
                **s,
            }
        else:
            line = _("%(kind)s: %(rows)s rows, %(created)s created, %(updated)s updated") % {
                "kind": kind,
                **s,
            }
        if dry_run:
            line = _("dry run, nothing written — %(line)s") % {"line": line}
        self.stdout.write(line)
        if s.get("assigned"):
            self.stdout.write(
                _("%(n)s new leads without an owner were assigned by the assignment rules")
                % {"n": s["assigned"]}
            )
        created = importer.lookups.created
        if created:
            parts = ", ".join(f"{n} {what}" for what, n in sorted(created.items()))
            self.stdout.write(_("new lookups: %(parts)s") % {"parts": parts})

    def _progress(self, table, kind):
        import contextlib

        err = getattr(self.stderr, "_out", sys.stderr)
        interactive = hasattr(err, "isatty") and err.isatty()
        if not (
            interactive or (table.path.suffix.lower() != ".xlsx" and table.total > LARGE_FILE_BYTES)
        ):
            return contextlib.nullcontext(None)
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

        @contextlib.contextmanager
        def bar():
            progress = Progress(
                f"[bold]{kind}",
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=Console(file=err),
                transient=interactive,
            )
            task = progress.add_task(kind, total=table.total)
            with progress:
                yield lambda: progress.update(task, completed=table.position())
                progress.update(task, completed=table.total)

        return bar()
