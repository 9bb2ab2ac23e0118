"""Time `leakmap import` of a generated data set into a fresh SQLite file.

    python benchmarks/import_bench.py 100000
    python benchmarks/import_bench.py 1000000

Runs the real commands as a user would (`python -m leakmap generate`, then `python -m leakmap
import KIND FILE` for each kind in import order), each in its own process, and reports wall
seconds, rows, rows/s and the peak RSS of each child (os.wait4's rusage). Target (issue 2):
1M leads with their ~300k deals, history and activities imported in under 2 minutes in total,
peak memory under 2 GB, on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ["users", "leads", "deals", "stage-history", "activities", "spend"]


def run_measured(args: list[str], env: dict) -> tuple[float, float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leakmap", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"leakmap {' '.join(args)} failed with exit code {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("leads", type=int, nargs="?", default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    opts = parser.parse_args()

    work = Path(opts.dir or tempfile.mkdtemp(prefix="leakmap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "PYTHONPATH": str(REPO),
    }
    env.pop("DATABASE_TEST_NAME", None)

    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    # The machine may be shared: the load average belongs beside every figure.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    secs, rss, out = run_measured(
        [
            "generate",
            "--leads",
            str(opts.leads),
            "--seed",
            str(opts.seed),
            "--out",
            str(work / "data"),
        ],
        env,
    )
    rows = {
        line.split(": ")[0]: int(line.split(": ")[1]) for line in out.splitlines() if ": " in line
    }
    print(f"generate --leads {opts.leads}: {secs:.1f} s, peak RSS {rss:.0f} MiB, {rows}")
    run_measured(["migrate", "-v0"], env)

    print(f"{'kind':<14}{'rows':>10}{'seconds':>10}{'rows/s':>10}{'peak MiB':>10}")
    total = 0.0
    peak = 0.0
    for kind in KINDS:
        secs, rss, _ = run_measured(["import", kind, str(work / "data" / f"{kind}.csv")], env)
        n = rows.get(kind, 0)
        total += secs
        peak = max(peak, rss)
        print(f"{kind:<14}{n:>10}{secs:>10.1f}{n / secs:>10.0f}{rss:>10.0f}")
    n = sum(rows.get(k, 0) for k in KINDS)
    print(f"{'total':<14}{n:>10}{total:>10.1f}{n / total:>10.0f}{peak:>10.0f}")
    print(f"database file: {db.stat().st_size / 2**20:.0f} MiB in {work}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
