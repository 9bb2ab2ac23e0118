"""`leakmap rules run [--as-of T]`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from leakmap.automation.models import Notification, RuleFiring
from tests.factories import make_deal

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> str:
    out = io.StringIO()
    call_command("rules", "run", *args, stdout=out)
    return out.getvalue()


def test_it_prints_what_fired_and_creates_nothing_new_the_second_time(only_rule, rep, manager):
    only_rule("stage_sla")
    deal = make_deal(owner=rep, name="Acme ERP")

    first = run("--as-of", "2026-01-12T17:00:01+08:00")
    assert first.splitlines() == [
        f"stage_sla  deal#{deal.pk}  Acme ERP: 7d in qualification (SLA 7d)"
        "  [notify:alice, notify:manager]",
        "1 fired as of 2026-01-12T17:00:01+08:00",
    ]
    assert run("--as-of", "2026-01-12T17:00:01+08:00").splitlines() == [
        "0 fired as of 2026-01-12T17:00:01+08:00"
    ]
    assert RuleFiring.objects.count() == 1
    assert Notification.objects.count() == 2


def test_it_reads_a_time_without_offset_in_the_install_time_zone(only_rule, rep):
    only_rule("stage_sla")
    make_deal(owner=rep)  # created 2026-01-05 17:00 Shanghai; SLA 7 days
    # Exactly the SLA is not over it; a minute later is.
    assert run("--as-of", "2026-01-12T17:00").endswith("0 fired as of 2026-01-12T17:00:00+08:00\n")
    assert run("--as-of", "2026-01-12 17:01").endswith("1 fired as of 2026-01-12T17:01:00+08:00\n")


def test_it_refuses_a_bad_time_with_exit_code_2_and_writes_nothing(rep):
    make_deal(owner=rep)
    with pytest.raises(CommandError) as err:
        run("--as-of", "next tuesday")
    assert err.value.returncode == 2
    assert "--as-of 'next tuesday': not an ISO 8601 time" in str(err.value)

    assert RuleFiring.objects.count() == 0


def test_it_exits_2_from_the_leakmap_command(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LEAKMAP_SECRET_KEY": "test-only",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "leakmap", "rules", "run", "--as-of", "2026-13-01"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--as-of '2026-13-01': not an ISO 8601 time" in proc.stderr
    assert "Traceback" not in proc.stderr
