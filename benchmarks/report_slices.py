"""Time every report × every slice (period, past date, rep, team, source) in one warm process.

    python benchmarks/report_slices.py --database-url sqlite:////path/bench.sqlite3
        [--repeat 3] [--max-seconds 10] [--reports funnel,owners] [--slices now,quarter]
        [--quarter 2026-Q3] [--as-of 2026-06-30] [--owner rep017] [--team 销售2组] [--source 官网]
        [--json-out slices.json]

    # or build the database first (`leakmap generate` + `leakmap import`, as import_bench.py):
    python benchmarks/report_slices.py --generate 1000000 --workdir /work/bench-data/slices1m

Issue 21: the default view reads trigger-kept tallies and is fast, while a quarter, a past date,
one rep or one team falls back to scans. This measures each report under each slice the way
`leakmap report NAME ... --format json` computes it (analytics.run_report, then render to JSON),
after one warm-up run of every report, best of --repeat. A case that runs longer than
--max-seconds is cut off (the database call is interrupted) and shown as ">X s"; it is not
repeated, nor is a case once its runs add up to --max-seconds. Prints a Markdown table (ms), the sum of each slice, and each cell's ratio to the same
report's "everything now" in the same run. Targets (issue 21): each report <= 300 ms, the
diagnosis <= 1 s, all reports of one slice together <= 2 s. The slices are picked from the data
(the last full calendar quarter inside it, a past date halfway through the last six months, the
rep with the median number of deals, that rep's team, the median source) unless given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmarks, for their helpers

import import_bench  # noqa: E402  (run_measured, KINDS: the real generate/import commands)

REPO = import_bench.REPO

SLICES = ["now", "quarter", "as-of", "rep", "rep-quarter", "team", "source"]
SLICE_TITLES = {
    "now": "everything now",
    "quarter": "a quarter",
    "as-of": "a past date",
    "rep": "one rep",
    "rep-quarter": "one rep's quarter",
    "team": "one team",
    "source": "one source",
}
TARGET_MS = 300
TARGET_DIAGNOSIS_MS = 1000
TARGET_SLICE_MS = 2000
# `leakmap report --format json` renders the body with indent=2, which Python's json module does
# in pure Python: for a long list (stuck: every stuck deal) that costs more than the report.
# --no-render times what the web pages and the API share: run_report(...).to_json().
RENDER = {"json": True}


class CaseTimeout(Exception):
    """A case ran past --max-seconds."""


@dataclass
class Cell:
    best_ms: float | None = None  # None: timed out or failed
    runs: int = 0
    timed_out: bool = False
    error: str | None = None
    times_ms: list[float] = field(default_factory=list)


# --- building the database -----------------------------------------------------------------------


def build(leads: int, seed: int, workdir: Path) -> str:
    """`leakmap generate` + `migrate` + `import` of every kind into WORKDIR/bench.sqlite3 (or into
    DATABASE_URL when that is set), with import_bench's runner. Returns the database URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.sqlite3'}"
    if db_url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(db_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_TEST_NAME", None)
    data = workdir / "data"
    args = ["generate", "--leads", str(leads), "--seed", str(seed), "--out", str(data)]
    secs, _, _ = import_bench.run_measured(args, env)
    print(f"generate --leads {leads}: {secs:.1f} s", file=sys.stderr)
    import_bench.run_measured(["migrate", "-v0"], env)
    for kind in import_bench.KINDS:
        secs, _, _ = import_bench.run_measured(["import", kind, str(data / f"{kind}.csv")], env)
        print(f"import {kind}: {secs:.1f} s", file=sys.stderr)
    return db_url


# --- choosing the slices from the data -----------------------------------------------------------


def quarter_bounds(label: str) -> tuple[dt.date, dt.date]:
    year, q = label.upper().split("-Q")
    first = dt.date(int(year), 3 * (int(q) - 1) + 1, 1)
    nxt = dt.date(first.year + (first.month == 10), (first.month + 2) % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def last_full_quarter(first_day: dt.date, last_day: dt.date) -> str:
    """The latest calendar quarter lying wholly inside [first_day, last_day] (or, when none
    does, the one holding last_day)."""
    q = (last_day.month - 1) // 3 + 1
    year = last_day.year
    for _ in range(8):
        start, end = quarter_bounds(f"{year}-Q{q}")
        if start >= first_day and end <= last_day:
            return f"{year}-Q{q}"
        year, q = (year, q - 1) if q > 1 else (year - 1, 4)
    return f"{last_day.year}-Q{(last_day.month - 1) // 3 + 1}"


def pick_slices(opts) -> dict[str, dict]:
    """ReportFilters keyword arguments per slice."""
    from django.db.models import Count, Max, Min

    from leakmap.accounts.models import Role, User
    from leakmap.analytics.filters import local_tz
    from leakmap.crm.models import Deal, Lead

    span = Lead.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    deal_last = Deal.objects.aggregate(last=Max("created_at"))["last"]
    if span["first"] is None:
        sys.exit("the database has no leads: load a generated data set first (--generate N)")
    tz = local_tz()
    first_day = span["first"].astimezone(tz).date()
    last_day = max(span["last"], deal_last or span["last"]).astimezone(tz).date()
    quarter = opts.quarter or last_full_quarter(first_day, last_day)
    q_from, q_to = quarter_bounds(quarter)
    if opts.as_of:
        as_of = dt.datetime.fromisoformat(opts.as_of)
    else:
        # Six months before the end, but never before the data starts: the generator writes six
        # months, so then halfway through them (a past date with a history behind and after it).
        back = min(dt.timedelta(days=182), (last_day - first_day) / 2)
        as_of = dt.datetime.combine(last_day - back, dt.time.min)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)

    owner = opts.owner
    if owner is None:
        reps = list(
            User.objects.filter(role=Role.REP)
            .annotate(n=Count("deals"))
            .filter(n__gt=0)
            .order_by("n", "username")
            .values_list("username", "n")
        )
        owner = reps[len(reps) // 2][0] if reps else None
    team = opts.team
    if team is None and owner is not None:
        team = User.objects.filter(username=owner).values_list("team__name", flat=True).first()
    source = opts.source
    if source is None:
        counts = list(
            Lead.objects.exclude(source=None)
            .values_list("source__name")
            .annotate(n=Count("id"))
            .order_by("n", "source__name")
        )
        source = counts[len(counts) // 2][0] if counts else None

    quarter_f = {"date_from": q_from, "date_to": q_to}
    chosen = {
        "now": {},
        "quarter": quarter_f,
        "as-of": {"as_of": as_of},
        "rep": {"owner": owner},
        "rep-quarter": {"owner": owner, **quarter_f},
        "team": {"team": team},
        "source": {"source": source},
    }
    return {k: v for k, v in chosen.items() if None not in v.values()}


def describe(kwargs: dict) -> str:
    parts = []
    for key, opt in (
        ("date_from", "--from"),
        ("date_to", "--to"),
        ("as_of", "--as-of"),
        ("owner", "--owner"),
        ("team", "--team"),
        ("source", "--source"),
    ):
        if key in kwargs:
            value = kwargs[key]
            parts.append(f"{opt} {value.isoformat() if hasattr(value, 'isoformat') else value}")
    return " ".join(parts) or "(no options)"


# --- timing --------------------------------------------------------------------------------------


def interrupter():
    """A function that cancels the statement running on this thread's database connection, from
    another thread (sqlite3 Connection.interrupt, psycopg Connection.cancel_safe)."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor == "sqlite":
        return raw.interrupt
    return getattr(raw, "cancel_safe", None) or raw.cancel


def call_once(name: str, kwargs: dict, limit: float) -> float:
    """One report as `leakmap report NAME --format json` computes it (without the JSON text
    under --no-render), in seconds; raises CaseTimeout after `limit` seconds. The alarm stops
    Python code; the timer thread stops a database statement, which no signal handler can
    interrupt while it runs."""
    from leakmap.analytics import ReportFilters, run_report
    from leakmap.analytics.render import render

    filters = ReportFilters(**kwargs)
    cancel = interrupter()
    expired = threading.Event()

    def on_timer() -> None:
        expired.set()
        try:
            cancel()
        except Exception:  # the statement may have ended meanwhile
            pass

    def on_alarm(signum, frame):
        raise CaseTimeout

    timer = threading.Timer(limit, on_timer)
    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, limit)
    timer.start()
    try:
        result = run_report(name, filters)
        if RENDER["json"]:
            render(result, "json")
        else:
            result.to_json()
        took = time.perf_counter() - start
    except CaseTimeout:
        raise
    except Exception:
        if expired.is_set() or time.perf_counter() - start >= limit:
            raise CaseTimeout from None
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        timer.cancel()
        signal.signal(signal.SIGALRM, previous)
    if took >= limit:
        raise CaseTimeout
    return took


def reset_connection() -> None:
    """After an interrupted statement: a fresh connection, so no half-read cursor or aborted
    transaction is left for the next case."""
    from django.db import connection

    try:
        connection.close()
    except Exception:
        pass
    connection.ensure_connection()


def time_case(name: str, kwargs: dict, repeat: int, limit: float) -> Cell:
    cell = Cell()
    for _ in range(repeat):
        try:
            took = call_once(name, kwargs, limit)
        except CaseTimeout:
            cell.timed_out = True
            reset_connection()
            break
        except Exception as exc:  # a report that fails on a slice is a finding, not a crash
            cell.error = f"{type(exc).__name__}: {exc}"[:200]
            reset_connection()
            break
        cell.runs += 1
        cell.times_ms.append(took * 1000)
        if sum(cell.times_ms) >= limit * 1000:
            break  # a slow case is measured fewer times rather than holding up the run
    if cell.times_ms and not cell.timed_out:
        cell.best_ms = min(cell.times_ms)
    return cell


# --- the table -----------------------------------------------------------------------------------


def target_ms(report: str) -> int:
    return TARGET_DIAGNOSIS_MS if report == "diagnosis" else TARGET_MS


def fmt_cell(cell: Cell, limit: float) -> str:
    if cell.error:
        return "error"
    if cell.timed_out or cell.best_ms is None:
        return f">{limit:g} s"
    return f"{cell.best_ms:,.0f}"


def mark(cell: Cell, report: str) -> str:
    if cell.error:
        return " ✗"
    ok = cell.best_ms is not None and cell.best_ms <= target_ms(report)
    return " ✓" if ok else " ✗"


def markdown(results: dict, reports: list[str], slices: list[str], limit: float) -> str:
    cols = [s for s in slices if s in results["slices"]]
    head = "| report | " + " | ".join(SLICE_TITLES[s] for s in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    lines = [
        "Milliseconds, best of the runs; ✓ met / ✗ missed (each report <= 300 ms, the diagnosis "
        f"<= 1 s); >{limit:g} s: cut off.",
        "",
        head,
        rule,
    ]
    cells = results["cells"]
    for r in reports:
        row = [fmt_cell(cells[r][s], limit) + mark(cells[r][s], r) for s in cols]
        lines.append(f"| {r} | " + " | ".join(row) + " |")
    sums = []
    for s in cols:
        col = [cells[r][s] for r in reports]
        total = sum(c.best_ms or limit * 1000 for c in col)
        complete = all(c.best_ms is not None for c in col)
        ok = complete and total <= TARGET_SLICE_MS
        sums.append(("" if complete else ">") + f"{total:,.0f}" + (" ✓" if ok else " ✗"))
    lines.append("| **all reports** (<= 2 s) | " + " | ".join(sums) + " |")

    lines += ["", 'Each cell ÷ the same report\'s "everything now" (same run):', "", head, rule]
    for r in reports:
        base = cells[r].get("now")
        row = []
        for s in cols:
            c = cells[r][s]
            if base is None or base.best_ms is None or c.error:
                row.append("–")
            elif c.best_ms is None:
                row.append(f">{limit * 1000 / base.best_ms:,.0f}×")
            else:
                ratio = c.best_ms / base.best_ms
                row.append(f"{ratio:,.1f}×" if ratio >= 0.1 else f"{ratio:.1g}×")
        lines.append(f"| {r} | " + " | ".join(row) + " |")

    lines += ["", "Slices:", ""]
    for s in cols:
        lines.append(f"- {SLICE_TITLES[s]}: `{describe(results['slices'][s])}`")
    errors = [(r, s, cells[r][s].error) for r in reports for s in cols if cells[r][s].error]
    for r, s, e in errors:
        lines.append(f"- error in {r} × {SLICE_TITLES[s]}: {e}")
    return "\n".join(lines)


def machine_line(db_url: str, leads: int, load_start, load_end) -> str:
    import sqlite3

    engine = "SQLite " + sqlite3.sqlite_version if db_url.startswith("sqlite") else "PostgreSQL"
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return (
        f"{leads:,} leads on {engine}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPUs, {mem:.0f} GiB, Python {platform.python_version()}; "
        "load average {:.2f} {:.2f} {:.2f} at start, ".format(*load_start)
        + "{:.2f} {:.2f} {:.2f} at end".format(*load_end)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", help="default: DATABASE_URL, or the --workdir database")
    ap.add_argument("--generate", type=int, metavar="LEADS", help="build the database first")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/leakmap-slices"))
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="cut a case off after this")
    ap.add_argument("--reports", help="comma-separated report names (default: every report)")
    ap.add_argument("--slices", help="comma-separated, of: " + ", ".join(SLICES))
    ap.add_argument("--quarter", help="YYYY-Qn (default: the last full quarter in the data)")
    ap.add_argument("--as-of", help="ISO date or time (default: see above)")
    ap.add_argument("--owner", help="a rep's username (default: the median rep by deals)")
    ap.add_argument("--team", help="a team's name (default: that rep's team)")
    ap.add_argument("--source", help="a source's name (default: the median source by leads)")
    ap.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    ap.add_argument(
        "--no-render",
        action="store_true",
        help="time run_report(...).to_json() without the CLI's JSON text (as report_bench.py)",
    )
    opts = ap.parse_args(argv)
    RENDER["json"] = not opts.no_render
    if opts.repeat < 1 or opts.max_seconds <= 0:
        ap.error("--repeat must be >= 1 and --max-seconds > 0")
    if opts.quarter and not re.fullmatch(r"\d{4}-[Qq][1-4]", opts.quarter):
        ap.error(f"--quarter: not YYYY-Qn (as 2026-Q3): {opts.quarter}")
    if opts.as_of:
        try:
            dt.datetime.fromisoformat(opts.as_of)
        except ValueError:
            ap.error(f"--as-of: not an ISO 8601 date or time: {opts.as_of}")
    slices = opts.slices.split(",") if opts.slices else SLICES
    unknown = [s for s in slices if s not in SLICES]
    if unknown:
        ap.error(f"--slices: unknown {', '.join(unknown)}; choose from {', '.join(SLICES)}")

    db_url = opts.database_url
    if opts.generate:
        if db_url:
            os.environ["DATABASE_URL"] = db_url
        db_url = build(opts.generate, opts.seed, opts.workdir)
    db_url = db_url or os.environ.get("DATABASE_URL") or f"sqlite:///{opts.workdir}/bench.sqlite3"
    os.environ["DATABASE_URL"] = db_url
    os.environ.pop("DATABASE_TEST_NAME", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from leakmap.analytics import REPORTS
    from leakmap.crm.models import Lead

    names = list(REPORTS)
    reports = opts.reports.split(",") if opts.reports else names
    unknown = [r for r in reports if r not in names]
    if unknown:
        ap.error(f"--reports: unknown {', '.join(unknown)}; choose from {', '.join(names)}")

    load_start = os.getloadavg()
    leads = Lead.objects.count()
    chosen = pick_slices(opts)
    slices = [s for s in slices if s in chosen]
    from leakmap.analytics import ReportFilters, ReportInputError
    from leakmap.analytics.filters import resolve

    for s in slices:
        try:
            resolve(ReportFilters(**chosen[s]))  # an unknown --owner/--team/--source
        except ReportInputError as exc:
            ap.error(f"{SLICE_TITLES[s]}: {exc}")
    results: dict = {"slices": {s: chosen[s] for s in slices}, "cells": {}}
    # One warm-up run of every report (imports, caches, the database's pages), not timed.
    for r in reports:
        time_case(r, {}, 1, opts.max_seconds)
    for s in slices:
        for r in reports:
            cell = time_case(r, chosen[s], opts.repeat, opts.max_seconds)
            results["cells"].setdefault(r, {})[s] = cell
            print(
                f"{r:<14} {SLICE_TITLES[s]:<18} {fmt_cell(cell, opts.max_seconds)}", file=sys.stderr
            )
    load_end = os.getloadavg()

    print(f"### report_slices — {machine_line(db_url, leads, load_start, load_end)}\n")
    command = shlex.join(["python", "benchmarks/report_slices.py", *(argv or sys.argv[1:])])
    print(f"`{command}` (best of {opts.repeat}, one warm process)\n")
    print(markdown(results, reports, slices, opts.max_seconds))
    if opts.json_out:
        out = {
            "machine": machine_line(db_url, leads, load_start, load_end),
            "leads": leads,
            "max_seconds": opts.max_seconds,
            "slices": {s: describe(chosen[s]) for s in slices},
            "cells": {
                r: {
                    s: {
                        "best_ms": c.best_ms,
                        "median_ms": statistics.median(c.times_ms) if c.times_ms else None,
                        "runs": c.runs,
                        "timed_out": c.timed_out,
                        "error": c.error,
                    }
                    for s, c in row.items()
                }
                for r, row in results["cells"].items()
            },
        }
        opts.json_out.write_text(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
