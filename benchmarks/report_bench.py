"""Time every report on a generated company, and check pandas and DuckDB against them.

    python benchmarks/report_bench.py --leads 1000000 [--seed 1] [--workdir /tmp/leakmap-bench]
        [--database-url sqlite:///…|postgres://…] [--reuse] [--repeat 3]

1. `leakmap generate --leads N --seed S --out WORKDIR/csv` (timed);
2. a fresh database (SQLite file in WORKDIR by default): `leakmap migrate`, then
   `leakmap import` of users, leads, deals, stage-history, activities, spend (timed);
   --reuse skips 1–2 when the CSVs and the database are already there;
3. in a fresh process: each report `--repeat` times (best and median wall time), then all of them
   together once, with the peak Python allocation (tracemalloc) and the process's max RSS;
4. pandas and DuckDB computing the funnel, owners and sources figures from the CSVs, timed, and
   compared with the reports' numbers (counts exactly, money to the cent, days to 1e-4).

Prints a Markdown summary to paste into benchmarks/RESULTS.md. Targets (issue 3): each report
< 300 ms, all together < 2 s, peak < 500 MB at 1,000,000 leads on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ["users", "leads", "deals", "stage-history", "activities", "spend"]
REPORT_NAMES = [
    "funnel",
    "owners",
    "sources",
    "lost-reasons",
    "stage-time",
    "stuck",
    "cycle",
    "forecast",
    "weekly",
]


def leakmap(args: list[str], db_url: str, cwd: Path) -> float:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "leakmap", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"leakmap {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took


def csv_file(csv_dir: Path, kind: str) -> Path | None:
    for name in (kind, kind.replace("-", "_")):
        for ext in ("csv", "xlsx"):
            p = csv_dir / f"{name}.{ext}"
            if p.exists():
                return p
    return None


# --- 3. the reports, in a fresh process ----------------------------------------------------------


def measure(repeat: int, out: Path) -> None:
    import tracemalloc

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection

    from leakmap.analytics import ReportFilters, run_report

    connection.ensure_connection()
    results: dict = {"reports": {}, "bodies": {}}
    for name in REPORT_NAMES:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            body = run_report(name, ReportFilters()).to_json()
            times.append(time.perf_counter() - start)
        results["reports"][name] = {
            "best_ms": min(times) * 1000,
            "median_ms": statistics.median(times) * 1000,
            "rows": len(body["rows"]),
        }
        if name in ("funnel", "owners", "sources"):
            results["bodies"][name] = body
    # All nine in a row, timed on their own: tracemalloc traces every allocation and slows a
    # report that builds tens of thousands of rows by half again, so memory is a second pass.
    start = time.perf_counter()
    for name in REPORT_NAMES:
        run_report(name, ReportFilters()).to_json()
    results["all_s"] = time.perf_counter() - start
    tracemalloc.start()
    for name in REPORT_NAMES:
        run_report(name, ReportFilters()).to_json()
    results["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    results["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(results, ensure_ascii=False))


# --- 4. pandas and DuckDB from the CSVs ----------------------------------------------------------


def stage_orders() -> tuple[dict[str, int], dict[str, str]]:
    """key → order (1-based, as the default pipeline migration numbers them), and every
    installed label → key, since import matches stages by key or by label."""
    sys.path.insert(0, str(REPO))
    from leakmap.crm.defaults import DEFAULT_STAGES

    orders = {row[0]: i for i, row in enumerate(DEFAULT_STAGES, start=1)}
    names = {}
    for row in DEFAULT_STAGES:
        names[row[0]] = names[row[1]] = names[row[2]] = row[0]
    return orders, names


def with_pandas(csv_dir: Path) -> tuple[dict, float]:
    import pandas as pd

    start = time.perf_counter()
    orders, names = stage_orders()
    open_keys = [k for k, o in orders.items() if k not in ("won", "lost")]
    leads = pd.read_csv(csv_file(csv_dir, "leads"), dtype=str, keep_default_na=False)
    deals = pd.read_csv(csv_file(csv_dir, "deals"), dtype=str, keep_default_na=False)
    hist = pd.read_csv(csv_file(csv_dir, "stage-history"), dtype=str, keep_default_na=False)
    deals["amount"] = pd.to_numeric(deals["amount"].replace("", "0"))
    deals["stage"] = deals["stage"].map(names)
    hist["stage"] = hist["stage"].map(names)
    hist["order"] = hist["stage"].map(orders)
    reached = (
        hist[hist["stage"] != "lost"].groupby("deal_external_id")["order"].max().rename("reached")
    )
    deals = deals.join(reached, on="external_id")
    # No history: the current stage (and every open stage before it); lost: the first open stage.
    fallback = deals["stage"].map(orders).where(deals["stage"] != "lost", 1)
    deals["reached"] = deals["reached"].fillna(fallback)

    funnel = {"leads": (len(leads), None), "deals": (len(deals), round(deals["amount"].sum(), 2))}
    for key in open_keys:
        hit = deals[deals["reached"] >= orders[key]]
        funnel[f"stage:{key}"] = (len(hit), round(hit["amount"].sum(), 2))
    won = deals[deals["stage"] == "won"]
    funnel["won"] = (len(won), round(won["amount"].sum(), 2))

    lead_by_id = leads.set_index("external_id")
    owner = deals["owner"].where(
        deals["owner"] != "", deals["lead_external_id"].map(lead_by_id["owner"])
    )
    deals["owner_"] = owner
    created = pd.to_datetime(deals["created_at"], utc=True, format="ISO8601")
    closed = pd.to_datetime(deals["closed_at"].replace("", None), utc=True, format="ISO8601")
    deals["cycle"] = ((closed - created).dt.total_seconds().round() / 86400).where(
        deals["stage"] == "won"
    )
    g = deals.groupby("owner_")
    owners = {}
    for name, part in g:
        w = part[part["stage"] == "won"]
        owners[name] = {
            "deals": len(part),
            "won": len(w),
            "lost": int((part["stage"] == "lost").sum()),
            "won_amount": round(w["amount"].sum(), 2),
            "avg_cycle_days": round(w["cycle"].mean(), 4) if len(w) else None,
        }

    lead_source = leads.set_index("external_id")["source"]
    from_leads = deals[deals["lead_external_id"] != ""].copy()
    from_leads["src"] = from_leads["lead_external_id"].map(lead_source)
    sources = {}
    lead_counts = leads.groupby("source").size()
    for src, n in lead_counts.items():
        part = from_leads[from_leads["src"] == src]
        w = part[part["stage"] == "won"]
        sources[src or None] = {
            "leads": int(n),
            "deals": len(part),
            "won": len(w),
            "won_amount": round(w["amount"].sum(), 2),
        }
    return {"funnel": funnel, "owners": owners, "sources": sources}, time.perf_counter() - start


def with_duckdb(csv_dir: Path) -> tuple[dict, float]:
    import duckdb

    start = time.perf_counter()
    orders, names = stage_orders()
    con = duckdb.connect()
    con.execute("CREATE TABLE stage_names(name VARCHAR, key VARCHAR)")
    con.executemany("INSERT INTO stage_names VALUES (?, ?)", list(names.items()))
    con.execute("CREATE TABLE stage_orders(key VARCHAR, ord INTEGER)")
    con.executemany("INSERT INTO stage_orders VALUES (?, ?)", list(orders.items()))

    def load(table: str, kind: str) -> None:
        path = str(csv_file(csv_dir, kind))
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv('{path}', header=true, all_varchar=true)"
        )

    load("leads", "leads")
    load("deals_raw", "deals")
    load("hist", "stage-history")
    con.execute("""
        CREATE TABLE deals AS
        SELECT d.*, CAST(COALESCE(NULLIF(d.amount, ''), '0') AS DECIMAL(18, 2)) AS amt,
               n.key AS stage_key,
               COALESCE(NULLIF(d.owner, ''), l.owner) AS owner_,
               l.source AS lead_source,
               COALESCE(
                   (SELECT MAX(o.ord) FROM hist h JOIN stage_names hn ON hn.name = h.stage
                      JOIN stage_orders o ON o.key = hn.key
                     WHERE h.deal_external_id = d.external_id AND hn.key <> 'lost'),
                   CASE WHEN n.key = 'lost' THEN 1 ELSE (SELECT ord FROM stage_orders WHERE key = n.key) END
               ) AS reached
        FROM deals_raw d
        JOIN stage_names n ON n.name = d.stage
        LEFT JOIN leads l ON l.external_id = NULLIF(d.lead_external_id, '')
    """)
    funnel = {"leads": (con.execute("SELECT COUNT(*) FROM leads").fetchone()[0], None)}
    n, amt = con.execute("SELECT COUNT(*), SUM(amt) FROM deals").fetchone()
    funnel["deals"] = (n, round(float(amt or 0), 2))
    for key, order in orders.items():
        if key in ("won", "lost"):
            continue
        n, amt = con.execute(
            "SELECT COUNT(*), COALESCE(SUM(amt), 0) FROM deals WHERE reached >= ?", [order]
        ).fetchone()
        funnel[f"stage:{key}"] = (n, round(float(amt), 2))
    n, amt = con.execute(
        "SELECT COUNT(*), COALESCE(SUM(amt), 0) FROM deals WHERE stage_key = 'won'"
    ).fetchone()
    funnel["won"] = (n, round(float(amt), 2))

    owners = {}
    for row in con.execute("""
        SELECT owner_, COUNT(*), COUNT(*) FILTER (WHERE stage_key = 'won'),
               COUNT(*) FILTER (WHERE stage_key = 'lost'),
               COALESCE(SUM(amt) FILTER (WHERE stage_key = 'won'), 0),
               AVG(ROUND(epoch(CAST(closed_at AS TIMESTAMPTZ)) - epoch(CAST(created_at AS TIMESTAMPTZ)))
                   / 86400.0) FILTER (WHERE stage_key = 'won')
        FROM deals GROUP BY owner_
    """).fetchall():
        owners[row[0]] = {
            "deals": row[1],
            "won": row[2],
            "lost": row[3],
            "won_amount": round(float(row[4]), 2),
            "avg_cycle_days": None if row[5] is None else round(row[5], 4),
        }
    sources = {}
    for row in con.execute("""
        SELECT l.source, COUNT(*) AS leads,
               (SELECT COUNT(*) FROM deals d WHERE d.lead_source = l.source
                  AND NULLIF(d.lead_external_id, '') IS NOT NULL),
               (SELECT COUNT(*) FROM deals d WHERE d.lead_source = l.source AND d.stage_key = 'won'
                  AND NULLIF(d.lead_external_id, '') IS NOT NULL),
               (SELECT COALESCE(SUM(amt), 0) FROM deals d WHERE d.lead_source = l.source
                  AND d.stage_key = 'won' AND NULLIF(d.lead_external_id, '') IS NOT NULL)
        FROM leads l GROUP BY l.source
    """).fetchall():
        sources[row[0] or None] = {
            "leads": row[1],
            "deals": row[2],
            "won": row[3],
            "won_amount": round(float(row[4]), 2),
        }
    return {"funnel": funnel, "owners": owners, "sources": sources}, time.perf_counter() - start


def from_reports(bodies: dict) -> dict:
    funnel = {
        r["step"]: (r["count"], None if r["amount"] is None else round(r["amount"], 2))
        for r in bodies["funnel"]["rows"]
    }
    owners = {
        r["owner"]: {
            "deals": r["deals"],
            "won": r["won"],
            "lost": r["lost"],
            "won_amount": round(r["won_amount"], 2),
            "avg_cycle_days": None
            if r["avg_cycle_days"] is None
            else round(r["avg_cycle_days"], 4),
        }
        for r in bodies["owners"]["rows"]
    }
    sources = {
        r["source"]: {k: r[k] for k in ("leads", "deals", "won")}
        | {"won_amount": round(r["won_amount"], 2)}
        for r in bodies["sources"]["rows"]
    }
    return {"funnel": funnel, "owners": owners, "sources": sources}


def differences(ours: dict, theirs: dict, who: str) -> list[str]:
    out = []
    for part in ("funnel", "owners", "sources"):
        a, b = ours[part], theirs[part]
        for key in sorted(set(a) | set(b), key=str):
            x, y = a.get(key), b.get(key)
            if isinstance(x, dict) and isinstance(y, dict):
                for k in x:
                    vx, vy = x[k], y.get(k)
                    if isinstance(vx, float) and isinstance(vy, float):
                        if abs(vx - vy) > (1e-4 if k == "avg_cycle_days" else 0.005):
                            out.append(f"{who} {part} {key} {k}: {vx} != {vy}")
                    elif vx != vy:
                        out.append(f"{who} {part} {key} {k}: {vx} != {vy}")
            elif isinstance(x, tuple) and isinstance(y, tuple):
                if x[0] != y[0] or (x[1] is not None and abs(x[1] - (y[1] or 0)) > 0.005):
                    out.append(f"{who} {part} {key}: {x} != {y}")
            else:
                out.append(f"{who} {part} {key}: {x} != {y}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/leakmap-bench"))
    ap.add_argument("--database-url")
    ap.add_argument("--reuse", action="store_true", help="keep the CSVs and database already there")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--measure-into", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_into:
        measure(args.repeat, args.measure_into)
        return

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    csv_dir = work / "csv"
    db_url = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    timings: dict[str, float] = {}
    if not args.reuse:
        shutil.rmtree(csv_dir, ignore_errors=True)
        timings["generate"] = leakmap(
            [
                "generate",
                "--leads",
                str(args.leads),
                "--seed",
                str(args.seed),
                "--out",
                str(csv_dir),
            ],
            db_url,
            work,
        )
        if db_url.startswith("sqlite:///"):
            Path(db_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        leakmap(["migrate", "-v0"], db_url, work)
        for kind in KINDS:
            path = csv_file(csv_dir, kind)
            if path is not None:
                timings[f"import {kind}"] = leakmap(["import", kind, str(path)], db_url, work)

    out = work / "measure.json"
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, __file__, "--measure-into", str(out), "--repeat", str(args.repeat)],
        env=env,
        check=True,
    )
    measured = json.loads(out.read_text())
    ours = from_reports(measured["bodies"])
    theirs_pd, t_pd = with_pandas(csv_dir)
    theirs_dd, t_dd = with_duckdb(csv_dir)
    diffs = differences(ours, theirs_pd, "pandas") + differences(ours, theirs_dd, "duckdb")
    ours_3 = sum(measured["reports"][n]["best_ms"] for n in ("funnel", "owners", "sources")) / 1000

    engine = "SQLite" if db_url.startswith("sqlite") else "PostgreSQL"
    print(
        f"\n### {args.leads:,} leads on {engine} — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    for k, v in timings.items():
        print(f"- {k}: {v:.1f} s")
    print("\n| report | best ms | median ms | rows |\n|---|---:|---:|---:|")
    for name, r in measured["reports"].items():
        print(f"| {name} | {r['best_ms']:.0f} | {r['median_ms']:.0f} | {r['rows']} |")
    print(
        f"\nall {len(REPORT_NAMES)} reports together: {measured['all_s']:.2f} s; "
        f"peak Python allocations {measured['tracemalloc_peak_mb']:.0f} MB; "
        f"process max RSS {measured['max_rss_mb']:.0f} MB"
    )
    print(
        f"funnel+owners+sources: leakmap {ours_3:.2f} s, pandas {t_pd:.2f} s "
        f"(×{t_pd / ours_3:.1f}), DuckDB {t_dd:.2f} s (×{t_dd / ours_3:.1f}) — "
        "pandas/DuckDB times include reading the CSVs"
    )
    print("same numbers: " + ("yes" if not diffs else f"NO ({len(diffs)} differences)"))
    for d in diffs[:30]:
        print("  ", d)


if __name__ == "__main__":
    main()
