from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from leakmap.crm.models import Deal, Lead, StageKind
from leakmap.exchange.demo import load_demo


class Command(BaseCommand):
    help = "Migrate, load the demo company into an empty database, and serve the web app."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="load and print, do not serve")

    def handle(self, *args, port: int, no_serve: bool, **opts):
        call_command("migrate", verbosity=0, interactive=False)
        logins = load_demo()
        if logins is None:
            self.stdout.write(
                _(
                    "The database already has data; the demo company was not loaded. Log in with"
                    " the logins printed when it was; `leakmap user passwd USERNAME` sets a new"
                    " password."
                )
            )
        else:
            self.stdout.write(_("Loaded the demo company. Logins (passwords are shown only now):"))
            for username, role, password in logins:
                self.stdout.write(f"  {username:<12} {role:<8} {password}")
        self._summary()
        if not no_serve:
            from leakmap.web.server import run_server

            self.stdout.write(_("Serving on http://127.0.0.1:%(p)s/ (Ctrl+C stops)") % {"p": port})
            self.stdout.flush()
            run_server(host="127.0.0.1", port=port, workers=2)

    def _summary(self) -> None:
        from leakmap.analytics import diagnosis_summary

        deals = Deal.objects.all()
        self.stdout.write(
            _("%(leads)s leads, %(deals)s deals, %(won)s won")
            % {
                "leads": Lead.objects.count(),
                "deals": deals.count(),
                "won": deals.filter(stage__kind=StageKind.WON).count(),
            }
        )
        self.stdout.write(_("Where did the revenue go? The biggest leaks:"))
        for line in diagnosis_summary(limit=5):
            self.stdout.write(f"  • {line}")
