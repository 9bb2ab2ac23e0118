"""benchmarks/report_slices.py runs end to end on a tiny generated company.

The script is run as a user runs it (its own process, `leakmap generate` + `import` into a fresh
database, then every report × every slice). Only the shape of its output is checked: timings on
a shared machine prove nothing, so no assertion here is about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "report_slices.py"
SLICE_TITLES = [
    "everything now",
    "a quarter",
    "a past date",
    "one rep",
    "one rep's quarter",
    "one team",
    "one source",
]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """A database of the script's own: a SQLite file, or on a PostgreSQL run a fresh database
    beside the configured one (never the developer's or the test run's)."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path_factory.mktemp('slices') / 'bench.sqlite3'}"
        return
    import psycopg

    parts = urlsplit(configured)
    name = f"slices_smoke_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_script(args: list[str], database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_TEST_NAME", None)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def table_rows(markdown: str, first_header: str) -> dict[str, list[str]]:
    """The body rows of the first Markdown table after a header line starting with the given
    text: first column → the other cells."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def loaded(database_url, tmp_path_factory):
    """The script building the database itself (200 leads) and timing every case once."""
    work = tmp_path_factory.mktemp("slices-work")
    out = work / "slices.json"
    proc = run_script(
        [
            "--generate",
            "200",
            "--workdir",
            str(work),
            "--repeat",
            "1",
            "--max-seconds",
            "120",
            "--json-out",
            str(out),
        ],
        database_url,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_it_times_every_report_under_every_slice(loaded):
    stdout, figures = loaded
    header = "| report | " + " | ".join(SLICE_TITLES) + " |"
    assert header in stdout
    reports = list(figures["cells"])
    assert {"funnel", "owners", "stuck", "diagnosis"} <= set(reports)

    table = table_rows(stdout, "| report |")
    assert set(table) == set(reports) | {"**all reports** (<= 2 s)"}
    for report in reports:
        cells = table[report]
        assert len(cells) == len(SLICE_TITLES)
        for cell in cells:
            figure, verdict = cell.rsplit(" ", 1)
            assert verdict in ("✓", "✗"), cell
            assert float(figure.replace(",", "")) >= 0, cell
        assert set(figures["cells"][report]) == {
            "now",
            "quarter",
            "as-of",
            "rep",
            "rep-quarter",
            "team",
            "source",
        }
        for case in figures["cells"][report].values():
            assert case["error"] is None and not case["timed_out"], case
            assert case["runs"] == 1 and case["best_ms"] is not None


def test_it_shows_each_cell_against_the_same_reports_everything_now(loaded):
    stdout, figures = loaded
    ratios = table_rows(stdout.split("÷", 1)[1], "| report |")
    for report in figures["cells"]:
        assert ratios[report][0] == "1.0×"
        assert all(cell.endswith("×") for cell in ratios[report])


def test_it_names_the_options_of_each_slice(loaded):
    stdout, figures = loaded
    assert "- a quarter: `--from " in stdout
    assert "- a past date: `--as-of " in stdout
    assert "- one rep's quarter: `--from " in stdout and "--owner " in stdout
    assert "- one team: `--team " in stdout
    assert "- one source: `--source " in stdout


def test_it_cuts_off_a_case_longer_than_max_seconds(loaded, database_url):
    proc = run_script(
        ["--reports", "funnel,diagnosis", "--slices", "now,as-of", "--max-seconds", "0.000001"],
        database_url,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = table_rows(proc.stdout, "| report |")
    assert table["funnel"] == [">1e-06 s ✗", ">1e-06 s ✗"]
    assert table["diagnosis"] == [">1e-06 s ✗", ">1e-06 s ✗"]


@pytest.mark.parametrize(
    "args, named",
    [
        (["--slices", "now,yesterday"], "yesterday"),
        (["--quarter", "2026Q3"], "--quarter"),
        (["--as-of", "last spring"], "--as-of"),
        (["--owner", "nobody_here"], "nobody_here"),
        (["--reports", "funnel,profits"], "profits"),
    ],
)
def test_it_refuses_a_bad_option_with_exit_code_2(loaded, database_url, args, named):
    proc = run_script([*args, "--repeat", "1"], database_url)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert named in proc.stderr and "Traceback" not in proc.stderr


def test_it_times_the_reports_without_the_json_text_when_asked(loaded, database_url):
    proc = run_script(
        ["--reports", "stuck", "--slices", "now,rep", "--repeat", "1", "--no-render"],
        database_url,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (figure_now, figure_rep) = table_rows(proc.stdout, "| report |")["stuck"]
    assert figure_now.endswith(("✓", "✗")) and figure_rep.endswith(("✓", "✗"))
    assert "s ✗" not in figure_now + figure_rep  # measured, not cut off
