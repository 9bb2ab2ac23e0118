"""The `leakmap` command as a user runs it: a real process, a real database file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
    reason="runs the CLI against a throwaway SQLite file",
)


def leakmap(tmp_path, *args, stdin: str = ""):
    # PYTHONPATH: run the code under test, whichever checkout `pip install -e` points at.
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "PYTHONPATH": str(REPO),
        "LEAKMAP_LANGUAGE": "en",  # messages asserted in English; zh-hans is the default
    }
    env.pop("DATABASE_TEST_NAME", None)
    return subprocess.run(
        [sys.executable, "-m", "leakmap", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_it_migrates_and_adds_a_user(tmp_path):
    assert leakmap(tmp_path, "migrate", "-v0").returncode == 0
    done = leakmap(
        tmp_path,
        "user",
        "add",
        "zhang",
        "--role",
        "manager",
        "--team",
        "华北",
        "--password-stdin",
        stdin="a-long-password-9\n",
    )
    assert done.returncode == 0, done.stderr
    assert "created manager zhang" in done.stdout


def test_it_exits_2_and_names_the_problem_on_bad_input(tmp_path):
    leakmap(tmp_path, "migrate", "-v0")
    leakmap(tmp_path, "user", "add", "li", "--role", "rep")
    again = leakmap(tmp_path, "user", "add", "li", "--role", "rep")
    assert again.returncode == 2
    assert "li" in again.stderr and "already exists" in again.stderr
    assert "Traceback" not in again.stderr

    bad_role = leakmap(tmp_path, "user", "add", "wang", "--role", "boss")
    assert bad_role.returncode == 2
    assert "--role" in bad_role.stderr

    unknown = leakmap(tmp_path, "frobnicate")
    assert unknown.returncode == 2


def test_a_failed_user_add_writes_nothing(tmp_path):
    leakmap(tmp_path, "migrate", "-v0")
    failed = leakmap(
        tmp_path, "user", "add", "zhao", "--role", "rep", "--team", "新团队", "--manager", "nobody"
    )
    assert failed.returncode == 2
    import sqlite3

    con = sqlite3.connect(tmp_path / "cli.sqlite3")
    assert con.execute("select count(*) from accounts_team").fetchone()[0] == 0
    assert con.execute("select count(*) from accounts_user").fetchone()[0] == 0


def test_it_sets_a_new_password(tmp_path):
    leakmap(tmp_path, "migrate", "-v0")
    leakmap(tmp_path, "user", "add", "qian", "--role", "admin")
    done = leakmap(
        tmp_path, "user", "passwd", "qian", "--password-stdin", stdin="another-long-pass-7\n"
    )
    assert done.returncode == 0, done.stderr
    weak = leakmap(tmp_path, "user", "passwd", "qian", "--password-stdin", stdin="123\n")
    assert weak.returncode == 2 and "password" in weak.stderr
    missing = leakmap(tmp_path, "user", "passwd", "nobody")
    assert missing.returncode == 2 and "nobody" in missing.stderr


def test_serve_refuses_a_database_that_is_migrations_behind(tmp_path):
    """After an upgrade, serving before `leakmap migrate` would answer 500 wherever a new column
    is read; the server says what to do instead, and starts nothing."""
    leakmap(tmp_path, "migrate", "-v0")
    leakmap(tmp_path, "migrate", "api", "0001", "-v0")  # as before the upgrade that added 0002
    refused = leakmap(tmp_path, "serve", "--port", "8799")
    assert refused.returncode == 2
    # Every api migration after 0001 is named (their number grows with each release).
    assert " migration(s) behind" in refused.stderr
    assert "api.0002_token_read_only" in refused.stderr
    assert "leakmap migrate" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_it_names_the_password_rules_a_new_password_breaks(tmp_path):
    leakmap(tmp_path, "migrate", "-v0")
    weak = leakmap(
        tmp_path, "user", "add", "wang", "--role", "rep", "--password-stdin", stdin="12345678\n"
    )
    assert weak.returncode == 2
    assert "too short" in weak.stderr and "entirely numeric" in weak.stderr
    assert "Traceback" not in weak.stderr
    assert leakmap(tmp_path, "user", "passwd", "wang").returncode == 2  # never created


def test_it_unlocks_from_the_command_line(tmp_path):
    leakmap(tmp_path, "migrate", "-v0")
    leakmap(tmp_path, "user", "add", "zhou", "--role", "rep")
    done = leakmap(tmp_path, "user", "unlock", "zhou", "--address", "203.0.113.9")
    assert done.returncode == 0, done.stderr
    assert "zhou and 203.0.113.9: no failed sign-ins recorded" in done.stdout
    bad = leakmap(tmp_path, "user", "unlock", "--address", "localhost")
    assert bad.returncode == 2 and "--address" in bad.stderr
    assert "Traceback" not in bad.stderr
