from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from leakmap.exchange.columns import KINDS
from leakmap.exchange.exporters import export


class Command(BaseCommand):
    help = "Export users, leads, deals, stage-history, activities or spend to .csv or .xlsx."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(KINDS))
        parser.add_argument("file")

    def handle(self, *args, kind: str, file: str, **opts):
        path = Path(file)
        if path.suffix.lower() not in (".csv", ".xlsx"):
            raise CommandError(
                _("%(f)s: use a .csv or .xlsx file name") % {"f": file}, returncode=2
            )
        if not path.parent.is_dir():
            raise CommandError(_("%(d)s: no such directory") % {"d": path.parent}, returncode=2)
        n = export(kind, path)
        self.stdout.write(
            _("%(kind)s: %(n)s rows written to %(f)s") % {"kind": kind, "n": n, "f": file}
        )
