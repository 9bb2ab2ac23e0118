"""The background runner in the gunicorn master: periodic jobs outside request threads."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from leakmap.automation.apps import register_jobs, rules_interval, run_rules_job
from leakmap.config import jobs as periodic

ROOT = Path(__file__).resolve().parents[2]


def test_it_logs_a_failing_job_and_keeps_running_the_others(caplog):
    ran: list[str] = []
    twice = threading.Event()

    def good():
        ran.append(threading.current_thread().name)
        if len(ran) >= 2:
            twice.set()

    def bad():
        raise RuntimeError("boom")

    scheduler = periodic.Scheduler([("bad", 0, bad), ("good", 0, good)])
    with caplog.at_level(logging.ERROR, logger="leakmap.config.jobs"):
        scheduler.start()
        try:
            assert twice.wait(30), "the good job did not run twice"
        finally:
            scheduler.stop(30)
    assert set(ran) == {"leakmap-scheduler"}  # never the caller's (a request's) thread
    assert scheduler.thread.daemon is True
    assert "periodic job bad failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text


def test_it_reports_whether_a_job_succeeded():
    results: list[bool] = []

    def both():  # in a thread of its own, as the scheduler runs them
        results.append(periodic.run_job("ok", lambda: None))
        results.append(periodic.run_job("fails", lambda: 1 / 0))

    thread = threading.Thread(target=both)
    thread.start()
    thread.join(30)
    assert results == [True, False]


@pytest.fixture
def jobs():
    saved = list(periodic.PERIODIC_JOBS)
    periodic.PERIODIC_JOBS.clear()
    yield periodic.PERIODIC_JOBS
    periodic.PERIODIC_JOBS[:] = saved


def test_it_registers_the_rules_every_five_minutes_unless_configured(jobs, monkeypatch):
    monkeypatch.delenv("LEAKMAP_RULES_INTERVAL", raising=False)
    assert register_jobs() is True
    assert jobs == [("rules", 300, run_rules_job)]

    jobs.clear()
    monkeypatch.setenv("LEAKMAP_RULES_INTERVAL", "60")
    register_jobs()
    assert jobs == [("rules", 60, run_rules_job)]

    jobs.clear()
    monkeypatch.setenv("LEAKMAP_RULES_INTERVAL", "0")
    assert register_jobs() is False
    assert jobs == []

    monkeypatch.setenv("LEAKMAP_RULES_INTERVAL", "5m")
    with pytest.raises(ImproperlyConfigured, match="LEAKMAP_RULES_INTERVAL='5m'"):
        rules_interval()


SEED = textwrap.dedent(
    """
    import datetime as dt, django
    django.setup()
    from django.utils import timezone
    from leakmap.accounts.services import user_create
    from leakmap.crm.services import DealInput, deal_create
    rep = user_create(username="alice", role="rep")
    deal_create(
        DealInput(name="Cold deal", owner=rep, created_at=timezone.now() - dt.timedelta(days=30))
    )
    """
)


def test_it_runs_the_rules_in_the_background_of_leakmap_serve(tmp_path):
    """A real `leakmap serve` (gunicorn) with a one-second interval fires the rules on its own."""
    db = tmp_path / "serve.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_RULES_INTERVAL": "1",
        "LEAKMAP_LOG_LEVEL": "INFO",
    }
    env.pop("DATABASE_TEST_NAME", None)
    subprocess.run(
        [sys.executable, "-m", "leakmap", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, check=True)

    with socket_port() as port:
        pass
    proc = subprocess.Popen(
        [sys.executable, "-m", "leakmap", "serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        fired = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with sqlite3.connect(db) as conn:
                fired = conn.execute(
                    "SELECT COUNT(*) FROM automation_rulefiring WHERE record_type = 'deal'"
                ).fetchone()[0]
            if fired:
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # no_follow_up (owner step and the 14-day escalation) and stage_sla, once each.
    assert fired == 3, err.decode()[-2000:]
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT kind, COUNT(*) FROM automation_notification GROUP BY kind ORDER BY kind"
        ).fetchall()
    assert rows == [("no_follow_up", 1), ("stage_sla", 1)]


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_it_holds_back_a_fork_while_a_job_runs():
    """gunicorn forks workers from the master's main thread; the fork guard takes `job_lock`
    first, so it waits for a running job (and its database connection) to finish."""
    started, release = threading.Event(), threading.Event()

    def job():
        started.set()
        release.wait(30)

    thread = threading.Thread(target=periodic.run_job, args=("slow", job))
    thread.start()
    try:
        assert started.wait(30)
        assert periodic.job_lock.acquire(blocking=False) is False  # a fork would wait here
    finally:
        release.set()
        thread.join(30)
    assert periodic.job_lock.acquire(blocking=False) is True
    periodic.job_lock.release()
