"""Two `leakmap rules run` processes at once against PostgreSQL fire every rule exactly once.

The processes work on a database of their own (migrated and seeded by real commands), not on
the test database: the runs must commit for each other to see them, and flushing the shared
test database would take the installed pipeline and rules away from the tests after this one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DEALS = 40
LEADS = 30
DB = settings.DATABASES["default"]

pytestmark = pytest.mark.skipif(
    DB["ENGINE"] != "django.db.backends.postgresql",
    reason="the advisory lock and concurrent writers need PostgreSQL",
)

SEED = textwrap.dedent(
    f"""
    import datetime as dt, django
    django.setup()
    from leakmap.accounts.services import team_get_or_create, user_create
    from leakmap.crm.services import DealInput, LeadInput, deal_create, lead_create
    T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    team = team_get_or_create("East")
    manager = user_create(username="manager", role="manager", team=team)
    rep = user_create(username="alice", role="rep", team=team, manager=manager)
    for i in range({DEALS}):
        deal_create(DealInput(name=f"Deal {{i}}", owner=rep, created_at=T0,
                              next_follow_up=T0 + dt.timedelta(days=1)))
    for i in range({LEADS}):
        lead_create(LeadInput(name=f"Lead {{i}}", owner=rep, created_at=T0))
    """
)


def conninfo(dbname: str) -> str:
    password = f" password={DB['PASSWORD']}" if DB["PASSWORD"] else ""
    return f"host={DB['HOST'] or '127.0.0.1'} port={DB['PORT'] or 5432} user={DB['USER']}{password} dbname={dbname}"


@pytest.fixture
def scratch_db():
    name = f"{(DB.get('TEST') or {}).get('NAME') or 'test_' + DB['NAME']}_concurrency"
    with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = DB["USER"] + (f":{DB['PASSWORD']}" if DB["PASSWORD"] else "")
    url = f"postgres://{auth}@{DB['HOST'] or '127.0.0.1'}:{DB['PORT'] or 5432}/{name}"
    yield name, url
    with psycopg.connect(conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_it_fires_each_rule_exactly_once_with_two_concurrent_runs(scratch_db):
    name, url = scratch_db
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    env.pop("DATABASE_TEST_NAME", None)
    subprocess.run(
        [sys.executable, "-m", "leakmap", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True)

    command = [sys.executable, "-m", "leakmap", "rules", "run", "--as-of", "2026-02-10T10:00+08:00"]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outputs]

    # Per deal: no_follow_up (owner + escalation), stage_sla, overdue_follow_up; per lead:
    # lead_not_contacted; and the manager's digest.
    expected = DEALS * 4 + LEADS + 1
    counts = [int(re.search(rb"^(\d+) fired", out, re.M).group(1)) for out, _ in outputs]
    assert sorted(counts) == [0, expected]

    with psycopg.connect(conninfo(name)) as conn:

        def one(sql: str):
            return conn.execute(sql).fetchone()

        assert one("SELECT COUNT(*) FROM automation_rulefiring") == (expected,)
        # No (rule, record, occurrence, step) twice — what the unique constraint guarantees.
        assert one(
            "SELECT COUNT(*) FROM (SELECT DISTINCT rule_id, record_type, record_id,"
            " occurrence_at, step FROM automation_rulefiring) AS f"
        ) == (expected,)
        assert one("SELECT COUNT(*) FROM crm_activity WHERE kind = 'task'") == (DEALS,)
        # alice: per deal no_follow_up, stage_sla, overdue; per lead one. The manager: per deal
        # the escalation and stage_sla, and one digest.
        rows = conn.execute(
            "SELECT u.username, COUNT(*) FROM automation_notification n"
            " JOIN accounts_user u ON u.id = n.recipient_id GROUP BY u.username ORDER BY 1"
        ).fetchall()
        assert rows == [("alice", DEALS * 3 + LEADS), ("manager", DEALS * 2 + 1)]
