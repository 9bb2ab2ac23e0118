"""Two `leakmap rules run` processes at once against PostgreSQL fire every rule exactly once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from leakmap.automation.models import Notification, RuleFiring
from leakmap.crm.models import Activity
from tests.factories import T0, LeadFactory, days, make_deal

ROOT = Path(__file__).resolve().parents[2]
DEALS = 40
LEADS = 30


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_it_fires_each_rule_exactly_once_with_two_concurrent_runs(rep, manager):
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock and concurrent writers need PostgreSQL")
    for i in range(DEALS):
        make_deal(owner=rep, name=f"Deal {i}", next_follow_up=T0 + days(1))
    for i in range(LEADS):
        LeadFactory(owner=rep, name=f"Lead {i}")

    env = {**os.environ, "DATABASE_URL": database_url()}
    env.pop("DATABASE_TEST_NAME", None)
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
    assert RuleFiring.objects.count() == expected
    assert Activity.objects.filter(kind="task").count() == DEALS
    # alice: per deal no_follow_up, stage_sla, overdue; per lead one. manager: escalation and
    # stage_sla per deal, and one digest.
    assert Notification.objects.filter(recipient=rep).count() == DEALS * 3 + LEADS
    assert Notification.objects.filter(recipient=manager).count() == DEALS * 2 + 1
