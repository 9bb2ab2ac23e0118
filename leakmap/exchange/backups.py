"""`leakmap backup FILE` and `leakmap restore FILE`: a consistent copy of the whole database
while the server runs, and its restore into an empty database.

- SQLite: the online backup API copies every page in one step, inside one read transaction,
  so the copy is the database as one committed moment left it (writers go on meanwhile: WAL).
  The file is a plain SQLite database.
- PostgreSQL: `pg_dump --format=custom`, which reads in one repeatable-read snapshot; restored
  by `pg_restore --single-transaction`, so a failed restore leaves nothing behind.

Both write the backup to FILE.partial and rename it when complete: a crash or a full disk
never leaves a file that looks like a backup but is not one. A restore refuses a database
that already has tables (unless forced), a backup of the other database kind, and a backup
that a newer leakmap made (migrations this version does not know); an older backup is
restored and then migrated.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.utils.translation import gettext as _

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
KIND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class BackupError(Exception):
    """A user's mistake or a missing tool: the command exits 2 with this message."""


@dataclass(frozen=True)
class Outcome:
    path: Path
    kind: str  # "sqlite" | "postgresql"
    size: int
    seconds: float
    migrated: tuple[str, ...] = ()  # for a restore: migrations applied after it


def _connection():
    return connections[DEFAULT_DB_ALIAS]


def _sqlite_path() -> str:
    name = str(_connection().settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file::memory:"):
        raise BackupError(_("the database is in memory: there is nothing on disk to back up"))
    return name


def _pg_env_and_target() -> tuple[dict[str, str], list[str]]:
    """The environment and the connection arguments of the client tools, for our database."""
    db = _connection().settings_dict
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    args = ["--host", db.get("HOST") or "127.0.0.1", "--port", str(db.get("PORT") or 5432)]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    return env, [*args, "--dbname", str(db["NAME"])]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(
            _(
                "%(tool)s was not found: install PostgreSQL's client tools, the same major"
                " version as the server (Debian: apt install postgresql-client)"
            )
            % {"tool": name}
        )
    return found


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tool = Path(command[0]).name
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{tool}: {' '.join(detail[-3:]) or done.returncode}")


# --- Backup ------------------------------------------------------------------------------------


def backup(path: str | Path) -> Outcome:
    path = Path(path)
    if not path.parent.is_dir():
        raise BackupError(_("%(dir)s is not a directory") % {"dir": path.parent})
    if path.is_dir():
        raise BackupError(_("%(path)s is a directory; give a file name") % {"path": path})
    partial = path.with_name(path.name + ".partial")
    started = time.monotonic()
    kind = _connection().vendor
    try:
        if kind == "sqlite":
            _backup_sqlite(partial)
        elif kind == "postgresql":
            env, target = _pg_env_and_target()
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    str(partial),
                    *target,
                ],
                env,
            )
        else:
            raise BackupError(_("backups of %(kind)s are not supported") % {"kind": kind})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Outcome(path, kind, path.stat().st_size, time.monotonic() - started)


def _backup_sqlite(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _copy_sqlite(_sqlite_path(), str(partial))


def _copy_sqlite(source_name: str, target_name: str) -> None:
    """Every page of one SQLite database into another, in one step of the online backup API:
    the source is read under one read transaction (one moment, writers go on), the target's
    pages are replaced in one write transaction (all or none)."""
    try:
        source = sqlite3.connect(source_name, timeout=30, uri=source_name.startswith("file:"))
        try:
            target = sqlite3.connect(target_name, timeout=30)
            try:
                source.backup(target, pages=-1)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite: {exc}") from exc


# --- Restore -----------------------------------------------------------------------------------


def backup_kind(path: Path) -> str:
    if not path.is_file():
        raise BackupError(_("%(path)s: no such file") % {"path": path})
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(
        _("%(path)s is not a leakmap backup (neither a SQLite database nor a pg_dump archive)")
        % {"path": path}
    )


def backup_migrations(path: Path, kind: str) -> set[tuple[str, str]]:
    """The (app, migration) pairs applied in the database the backup was taken of."""
    if kind == "sqlite":
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return set(conn.execute("SELECT app, name FROM django_migrations").fetchall())
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackupError(
                _("%(path)s is not a leakmap backup: %(error)s") % {"path": path, "error": exc}
            ) from exc
    done = subprocess.run(
        [_tool("pg_restore"), "--data-only", "--table=django_migrations", "--file=-", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore: {done.stderr.strip()}")
    pairs, in_copy = set(), False
    for line in done.stdout.splitlines():
        if line.startswith("COPY ") and "django_migrations" in line:
            in_copy = True
        elif in_copy and line == "\\.":
            in_copy = False
        elif in_copy:
            _id, app, name, *_rest = line.split("\t")
            pairs.add((app, name))
    if not pairs:
        raise BackupError(
            _("%(path)s is not a leakmap backup: no migrations in it") % {"path": path}
        )
    return pairs


def restore(path: str | Path, *, force: bool = False) -> Outcome:
    path = Path(path)
    kind = backup_kind(path)
    conn = _connection()
    if kind != conn.vendor:
        raise BackupError(
            _(
                "%(path)s is a %(backup)s backup and the database is %(db)s: restore it into"
                " %(backup)s, or move the data with leakmap export and import"
            )
            % {"path": path, "backup": KIND_NAMES[kind], "db": KIND_NAMES.get(conn.vendor)}
        )
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    unknown = sorted(backup_migrations(path, kind) - known)
    if unknown:
        names = ", ".join(f"{app}.{name}" for app, name in unknown[:3])
        raise BackupError(
            _(
                "%(path)s was made by a newer leakmap (%(n)s migration(s) unknown here: %(names)s):"
                " upgrade leakmap first"
            )
            % {"path": path, "n": len(unknown), "names": names}
        )
    tables = conn.introspection.table_names()
    if tables and not force:
        raise BackupError(
            _(
                "the database is not empty (%(n)s tables): restore into an empty database,"
                " or add --force to replace its contents"
            )
            % {"n": len(tables)}
        )
    started = time.monotonic()
    if kind == "sqlite":
        _restore_sqlite(path)
    else:
        env, target = _pg_env_and_target()
        clean = ["--clean", "--if-exists"] if tables else []
        _run(
            [
                _tool("pg_restore"),
                "--exit-on-error",
                "--single-transaction",
                "--no-owner",
                *clean,
                *target,
                str(path),
            ],
            env,
        )
    conn.close()
    migrated = _migrate_forward()
    return Outcome(path, kind, path.stat().st_size, time.monotonic() - started, migrated)


def _restore_sqlite(path: Path) -> None:
    target_name = _sqlite_path()
    _connection().close()
    _copy_sqlite(f"file:{path}?mode=ro", target_name)


def _migrate_forward() -> tuple[str, ...]:
    """Apply the migrations a restored older backup lacks; the names applied."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(_connection())
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        call_command("migrate", verbosity=0, interactive=False)
    return tuple(f"{m.app_label}.{m.name}" for m, _backwards in plan)
