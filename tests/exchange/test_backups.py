"""`leakmap backup` and `leakmap restore`, run as commands against real databases.

The central test takes a backup while a real `leakmap serve` answers a burst of API writes,
restores it into an empty database, and checks that the copy is the source as one moment
left it: the burst's leads are exactly a prefix of those the API acknowledged, every table
equals the source's at that moment (the source now, less the leads written after), and the
tallies the triggers keep equal a recount of the restored records.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.accounts.test_lockout import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]
DB = settings.DATABASES["default"]
ON_POSTGRES = DB["ENGINE"] == "django.db.backends.postgresql"
BURST = "burst-"

SEED = textwrap.dedent(
    """
    import django; django.setup()
    from leakmap.accounts.services import user_create
    from leakmap.api.tokens import token_create
    from leakmap.crm.services import LeadInput, lead_create
    admin = user_create(username="boss", role="admin", password="copper-kettle-4417")
    for i in range(20):
        lead_create(LeadInput(name=f"before-{i}", owner=admin, phone=f"1380013{i:04d}"))
    print(token_create(user=admin, name="burst")[1])
    """
)

# Per table: row count and a digest of its rows in key order. Leads of the burst after
# BURST_UPTO (an argument) are left out, with the rows that hang off them.
STATE = textwrap.dedent(
    """
    import hashlib, json, sys, django; django.setup()
    from django.db import connection
    from leakmap.crm import tallies
    upto = sys.argv[1]
    later = "SELECT id FROM crm_lead WHERE name LIKE 'burst-%%' AND name > %s"
    out = {}
    with connection.cursor() as cursor:
        # SQLite's FTS5 search index: its shadow tables' layout depends on the history of
        # inserts, not only on the rows; it is checked by searching below.
        for table in sorted(connection.introspection.table_names()):
            if table.endswith("_text") or "_text_" in table:
                continue
            where, params = "", []
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            if table == "crm_lead":
                where, params = f" WHERE id NOT IN ({later})", [upto]
            elif "lead_id" in columns:
                where, params = f" WHERE lead_id IS NULL OR lead_id NOT IN ({later})", [upto]
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}{where} ORDER BY 1", params)
            rows = cursor.fetchall()
            out[table] = [len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()]
        cursor.execute("SELECT name FROM crm_lead WHERE name LIKE 'burst-%%' ORDER BY name")
        burst = [r[0] for r in cursor.fetchall()]
    differences = {t.table: len(tallies.differences(t)) for t in tallies.TALLIES}
    # The search indexes, by searching: every lead is found by a part of its name and phone.
    from leakmap.crm.models import Lead
    from leakmap.crm.text_search import containing
    names = dict(Lead.objects.values_list("id", "name"))
    phones = dict(Lead.objects.values_list("id", "phone"))
    def found(q, column):
        return set(containing(Lead.objects.all(), q, (column,)).values_list("id", flat=True))
    unfound = [i for i, name in names.items() if i not in found(name[2:], "name")]
    unfound += [i for i, phone in phones.items() if i not in found(phone[3:], "phone")]
    print(json.dumps({"tables": out, "burst": burst, "tally_differences": differences,
                      "unfound": unfound}))
    """
)


def pg_url(name: str) -> str:
    auth = DB["USER"] + (f":{DB['PASSWORD']}" if DB["PASSWORD"] else "")
    return f"postgres://{auth}@{DB['HOST'] or '127.0.0.1'}:{DB['PORT'] or 5432}/{name}"


def pg_admin():
    password = f" password={DB['PASSWORD']}" if DB["PASSWORD"] else ""
    return psycopg.connect(
        f"host={DB['HOST'] or '127.0.0.1'} port={DB['PORT'] or 5432} user={DB['USER']}"
        f"{password} dbname=postgres",
        autocommit=True,
    )


@pytest.fixture
def databases(tmp_path):
    """URLs of a source and an empty target database of the kind the suite runs on."""
    if not ON_POSTGRES:
        yield (
            f"sqlite:///{tmp_path / 'source.sqlite3'}",
            f"sqlite:///{tmp_path / 'target.sqlite3'}",
        )
        return
    prefix = f"{(DB.get('TEST') or {}).get('NAME') or 'test_' + DB['NAME']}_backup"
    names = [f"{prefix}_source", f"{prefix}_target"]
    with pg_admin() as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    yield tuple(pg_url(n) for n in names)
    with pg_admin() as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def leakmap(url: str, *args: str, check: bool = True, env: dict | None = None, **kwargs):
    environ = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_RULES_INTERVAL": "0",
        "LEAKMAP_LANGUAGE": "en",  # messages asserted in English; zh-hans is the default
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    environ.pop("DATABASE_TEST_NAME", None)
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environ, capture_output=True, text=True, **kwargs
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def state(url: str, upto: str = "~") -> dict:
    return json.loads(leakmap(url, "-c", STATE, upto).stdout)


def table_names(url: str) -> list[str]:
    script = "import django; django.setup(); from django.db import connection;"
    script += " print(*connection.introspection.table_names())"
    return leakmap(url, "-c", script).stdout.split()


def migrated_and_seeded(url: str) -> str:
    leakmap(url, "-m", "leakmap", "migrate", "-v0")
    return leakmap(url, "-c", SEED).stdout.strip()


def test_a_backup_during_a_burst_of_api_writes_restores_one_moment(databases, tmp_path):
    source, target = databases
    token = migrated_and_seeded(source)
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": source,
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_RULES_INTERVAL": "0",
        "PYTHONPATH": str(ROOT),
    }
    environ.pop("DATABASE_TEST_NAME", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "leakmap", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    acknowledged: list[str] = []
    stop = threading.Event()
    failures: list[str] = []

    def write_leads():
        i = 0
        while not stop.is_set():
            i += 1
            name = f"{BURST}{i:05d}"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/leads",
                data=json.dumps({"name": name, "phone": f"139{i:08d}"}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 201
                acknowledged.append(name)
            except Exception as exc:  # noqa: BLE001 — reported by the test below
                failures.append(f"{name}: {exc}")
                return

    try:
        wait_until_up(port)
        writer = threading.Thread(target=write_leads)
        writer.start()
        while len(acknowledged) < 25 and not failures:
            time.sleep(0.05)
        backup_file = tmp_path / "backup.bin"
        made = leakmap(source, "-m", "leakmap", "backup", str(backup_file))
        assert "backup written" in made.stdout
        written_at_backup = len(acknowledged)
        while len(acknowledged) < written_at_backup + 25 and not failures:
            time.sleep(0.05)
        stop.set()
        writer.join(timeout=60)
    finally:
        stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert failures == []

    restored = leakmap(target, "-m", "leakmap", "restore", str(backup_file))
    assert "restored" in restored.stdout
    copy = state(target)
    # A prefix of what the API acknowledged, taken while it was writing.
    k = len(copy["burst"])
    assert copy["burst"] == acknowledged[:k]
    assert 25 <= k < len(acknowledged)
    # Every table equals the source's at that moment: the source now, less the later leads…
    at_backup = state(source, upto=copy["burst"][-1])
    tallied = {"crm_leadtally"}  # …but the tally, whose counts those leads changed:
    assert {t: v for t, v in copy["tables"].items() if t not in tallied} == {
        t: v for t, v in at_backup["tables"].items() if t not in tallied
    }
    # it equals a recount of the restored leads. The search index finds every restored lead.
    assert copy["tally_differences"] == dict.fromkeys(copy["tally_differences"], 0)
    assert copy["unfound"] == []
    assert copy["tables"]["crm_lead"][0] == 20 + k


def test_restore_refuses_a_database_with_tables_unless_forced(databases, tmp_path):
    source, target = databases
    migrated_and_seeded(source)
    backup_file = tmp_path / "backup.bin"
    leakmap(source, "-m", "leakmap", "backup", str(backup_file))
    leakmap(target, "-m", "leakmap", "migrate", "-v0")
    refused = leakmap(target, "-m", "leakmap", "restore", str(backup_file), check=False)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert state(target)["tables"]["crm_lead"][0] == 0  # nothing written
    leakmap(target, "-m", "leakmap", "restore", str(backup_file), "--force")
    assert state(target)["tables"] == state(source)["tables"]


def test_restore_refuses_a_backup_of_a_newer_leakmap(databases, tmp_path):
    source, target = databases
    migrated_and_seeded(source)
    backup_file = tmp_path / "backup.bin"
    if ON_POSTGRES:
        with psycopg.connect(source.replace("postgres://", "postgresql://")) as conn:
            conn.execute(
                "INSERT INTO django_migrations (app, name, applied)"
                " VALUES ('crm', '9999_from_the_future', now())"
            )
        leakmap(source, "-m", "leakmap", "backup", str(backup_file))
    else:
        leakmap(source, "-m", "leakmap", "backup", str(backup_file))
        with sqlite3.connect(backup_file) as conn:
            conn.execute(
                "INSERT INTO django_migrations (app, name, applied)"
                " VALUES ('crm', '9999_from_the_future', '2027-01-01')"
            )
    refused = leakmap(target, "-m", "leakmap", "restore", str(backup_file), check=False)
    assert refused.returncode == 2
    assert "newer leakmap" in refused.stderr and "crm.9999_from_the_future" in refused.stderr
    assert table_names(target) == []  # nothing written


def test_an_older_backup_is_migrated_after_its_restore(databases, tmp_path):
    source, target = databases
    leakmap(source, "-m", "leakmap", "migrate", "crm", "0027", "-v0")
    backup_file = tmp_path / "backup.bin"
    leakmap(source, "-m", "leakmap", "backup", str(backup_file))
    restored = leakmap(target, "-m", "leakmap", "restore", str(backup_file))
    assert "migration(s) the backup was behind" in restored.stdout
    pending = leakmap(target, "-m", "leakmap", "migrate", "--check", check=False)
    assert pending.returncode == 0, pending.stdout


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.bin", None, "no such file"),
        ("notes.txt", b"hello", "is not a leakmap backup"),
        ("broken.sqlite3", b"SQLite format 3\x00" + b"\x00" * 200, "is not a leakmap backup"),
    ],
)
def test_restore_names_what_is_wrong_with_the_file(databases, tmp_path, name, content, message):
    _source, target = databases
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    if ON_POSTGRES and content and content.startswith(b"SQLite"):
        message = "is a SQLite backup and the database is PostgreSQL"
    refused = leakmap(target, "-m", "leakmap", "restore", str(path), check=False)
    assert refused.returncode == 2, refused.stderr
    assert message in refused.stderr and "Traceback" not in refused.stderr


def test_backup_names_a_missing_directory_and_writes_nothing(databases, tmp_path):
    source, _target = databases
    leakmap(source, "-m", "leakmap", "migrate", "-v0")
    refused = leakmap(
        source, "-m", "leakmap", "backup", str(tmp_path / "no" / "such" / "b.bin"), check=False
    )
    assert refused.returncode == 2 and "is not a directory" in refused.stderr
    in_chinese = leakmap(
        source,
        *("-m", "leakmap", "backup", str(tmp_path / "no" / "such" / "b.bin")),
        check=False,
        env={"LEAKMAP_LANGUAGE": "zh-hans"},
    )
    assert in_chinese.returncode == 2 and "不是目录" in in_chinese.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(not ON_POSTGRES, reason="pg_dump is PostgreSQL's")
def test_without_the_client_tools_the_backup_says_what_to_install(databases, tmp_path):
    source, _target = databases
    leakmap(source, "-m", "leakmap", "migrate", "-v0")
    empty = tmp_path / "bin"
    empty.mkdir()
    refused = leakmap(
        source,
        "-m",
        "leakmap",
        "backup",
        str(tmp_path / "b.dump"),
        check=False,
        env={"PATH": str(empty)},
    )
    assert refused.returncode == 2
    assert "pg_dump was not found" in refused.stderr and "postgresql-client" in refused.stderr
    assert not list(tmp_path.glob("b.dump*"))
