"""The `leakmap` command. Thin: each verb is a Django management command of the same job."""

from __future__ import annotations

import os
import sys

USAGE = """usage: leakmap COMMAND [ARGS]

commands:
  demo       migrate, load the demo company into an empty database, and serve the web app
  serve      run the production web server
  migrate    apply database migrations
  user       manage logins (leakmap user add USERNAME --role rep|manager|admin,
             user passwd USERNAME, user unlock USERNAME [--address IP])
  import     import users, leads, deals, stage-history, activities or spend from CSV/XLSX
  export     export the same kinds and columns
  report     print a report (funnel, owners, sources, lost-reasons, stage-time, stuck, cycle,
             forecast, weekly, diagnosis)
  rules      evaluate the workflow rules once (leakmap rules run)
  generate   write a synthetic data set as import CSVs
  check      check the configuration (leakmap check --deploy: the production settings)
  backup     write a consistent copy of the database while the server runs (leakmap backup FILE)
  restore    restore such a copy into an empty database (leakmap restore FILE [--force])

Run `leakmap COMMAND --help` for a command's options.
Configuration comes from the environment: DATABASE_URL, LEAKMAP_TIME_ZONE, LEAKMAP_CURRENCY, …
"""

# verb → management command
VERBS = {
    "demo": "demo",
    "serve": "serve",
    "migrate": "migrate",
    "user": "user",
    "import": "import_data",
    "export": "export_data",
    "report": "report",
    "rules": "rules",
    "generate": "generate",
    "check": "check",
    "backup": "backup",
    "restore": "restore",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        sys.stderr.write(f"leakmap: unknown command {verb!r}\n\n{USAGE}")
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["leakmap", VERBS[verb], *rest])
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"leakmap: configuration error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
