"""`leakmap serve`: gunicorn + whitenoise, never Django's development server."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from leakmap.web.server import run_server


class Command(BaseCommand):
    help = "Run the production web server (gunicorn, static files served by whitenoise)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=2)

    def handle(self, *args, host: str, port: int, workers: int, **opts):
        if not (0 < port < 65536):
            raise CommandError(f"--port {port}: not a TCP port", returncode=2)
        if workers < 1:
            raise CommandError(f"--workers {workers}: need at least one", returncode=2)
        # After an upgrade the code may expect columns the database does not have yet: every
        # page touching them would be a 500. Say so before serving anything.
        pending = _unapplied_migrations()
        if pending:
            raise CommandError(
                f"the database is {len(pending)} migration(s) behind this version of leakmap"
                f" ({', '.join(pending[:3])}{', …' if len(pending) > 3 else ''});"
                " run `leakmap migrate` first",
                returncode=2,
            )
        run_server(host=host, port=port, workers=workers)


def _unapplied_migrations() -> list[str]:
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
