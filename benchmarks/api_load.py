"""API load: `leakmap serve --workers 2`, 20 concurrent clients for 60 s, SQLite then PostgreSQL.

    python benchmarks/api_load.py                      # both databases, 60 s each
    python benchmarks/api_load.py --db sqlite --duration 20 --no-record

Each client is a thread with its own keep-alive HTTP connection and its own rep's token. The mix:
lists of leads / deals / activities, a funnel report, and writes — create a lead, log an activity,
move a deal. Afterwards the server is stopped and the rows are counted: every write the API
acknowledged (201/200) must be in the database. Figures go to benchmarks/RESULTS.md under
"## API load". Traffic goes only to 127.0.0.1.

The data set comes from `leakmap generate` + `leakmap import` when those commands exist, else
from `--seed` below (services only, so the invariants hold).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "leakmap_api_load"
REPS = 10
CLIENTS = 20

# --- Seeding (runs inside a Django process: `api_load.py --seed N`) -------------------------


def seed(leads: int) -> None:
    """Users, tokens and a book of leads/deals/activities, written through the services."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    django.setup()
    from decimal import Decimal

    from django.utils import timezone

    from leakmap.accounts.services import team_get_or_create, user_create
    from leakmap.api.tokens import token_create
    from leakmap.crm import services
    from leakmap.crm.models import Deal

    rng = random.Random(7)
    teams = [team_get_or_create("华东组"), team_get_or_create("华南组")]
    manager = user_create(username="bench-manager", role="manager", team=teams[0])
    reps = [
        user_create(username=f"bench-rep{i}", role="rep", team=teams[i % 2], manager=manager)
        for i in range(REPS)
    ]
    sources = [services.source_get_or_create(n) for n in ("官网", "展会", "百度推广", "转介绍")]
    start = timezone.now() - dt.timedelta(days=180)
    for i in range(leads):
        owner = reps[i % REPS]
        created = start + dt.timedelta(minutes=rng.randrange(0, 170 * 24 * 60))
        lead = services.lead_create(
            services.LeadInput(
                name=f"客户{i}",
                company=f"公司{i}",
                email=f"lead{i}@example.com",
                owner=owner,
                source=rng.choice(sources),
                budget=Decimal(rng.randrange(10, 500) * 1000),
                created_at=created,
            )
        )
        if rng.random() < 0.4:
            deal = services.lead_convert(
                lead=lead,
                data=services.ConversionInput(
                    expected_close_date=(created + dt.timedelta(days=60)).date()
                ),
                by=owner,
                at=created + dt.timedelta(days=1),
            )
            services.activity_log(
                services.ActivityInput(
                    owner=owner,
                    kind="call",
                    deal=deal,
                    done_at=created + dt.timedelta(days=2),
                    created_at=created + dt.timedelta(days=2),
                )
            )
    tokens = {rep.username: token_create(user=rep, name="bench")[1] for rep in reps}
    open_deals = defaultdict(list)
    for deal_id, owner, key in Deal.objects.filter(stage__kind="open").values_list(
        "pk", "owner__username", "stage__key"
    ):
        open_deals[owner].append((deal_id, key))
    print(json.dumps({"tokens": tokens, "open_deals": open_deals}))


def tokens_for_reps() -> None:
    """A token per active rep of an imported data set, and each rep's movable open deals."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    django.setup()
    from leakmap.accounts.models import User
    from leakmap.api.tokens import token_create
    from leakmap.crm.models import Deal

    reps = User.objects.filter(role="rep", is_active=True).order_by("username")
    tokens = {rep.username: token_create(user=rep, name="bench")[1] for rep in reps}
    open_deals = defaultdict(list)
    # Deals that may enter any open stage: the proposal stage wants an amount and a close date.
    movable = Deal.objects.filter(
        stage__kind="open", amount__gt=0, expected_close_date__isnull=False, owner__in=reps
    )
    for deal_id, owner, key in movable.values_list("pk", "owner__username", "stage__key"):
        open_deals[owner].append((deal_id, key))
    print(json.dumps({"tokens": tokens, "open_deals": open_deals}))


def count(ids_file: str) -> None:
    """Count the acknowledged writes in the database (inside a Django process)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    django.setup()
    from leakmap.crm.models import Activity, Lead, StageChange

    acked = json.loads(Path(ids_file).read_text())
    leads = set(Lead.objects.filter(pk__in=acked["leads"]).values_list("pk", flat=True))
    activities = set(
        Activity.objects.filter(pk__in=acked["activities"]).values_list("pk", flat=True)
    )
    # A move is there when its deal has a history row entering that stage at or after the
    # benchmark started (several moves of one deal to one stage count once each).
    moves_found = 0
    wanted = Counter((d, s) for d, s in acked["moves"])
    have = Counter(
        StageChange.objects.filter(
            deal_id__in={d for d, _s in acked["moves"]}, at__gte=acked["started_at"]
        ).values_list("deal_id", "to_stage__key")
    )
    for key, n in wanted.items():
        moves_found += min(n, have.get(key, 0))
    print(
        json.dumps(
            {
                "leads": [len(leads), len(set(acked["leads"]))],
                "activities": [len(activities), len(set(acked["activities"]))],
                "moves": [moves_found, len(acked["moves"])],
            }
        )
    )


# --- Driving the server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_django(env: dict, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"failed: {' '.join(args)}")
    return out.stdout


def seed_database(env: dict, leads: int, workdir: str) -> tuple[dict, str]:
    """Returns the tokens and open deals, and how the data set was made."""
    run_django(env, "-m", "leakmap", "migrate")
    me = str(Path(__file__).resolve())
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "leakmap",
            "generate",
            "--leads",
            str(leads),
            "--seed",
            "7",
            "--out",
            workdir,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if generated.returncode == 0:
        for kind in ("users", "leads", "deals", "stage-history", "activities", "spend"):
            path = Path(workdir) / f"{kind}.csv"
            if path.exists():
                run_django(env, "-m", "leakmap", "import", kind, str(path))
        out = run_django(env, me, "--tokens")
        how = f"`leakmap generate --leads {leads} --seed 7` + `leakmap import`"
    else:
        out = run_django(env, me, "--seed", str(leads))
        how = f"{leads} leads written through the services by `api_load.py --seed`"
    return json.loads(out.strip().splitlines()[-1]), how


OPEN_STAGES = [
    "qualification",
    "needs_analysis",
    "proposal",
    "proposal_review",
    "negotiation",
    "verbal",
]


class Client(threading.Thread):
    def __init__(self, port, token, deal_ids, deadline, report_ok, rng_seed):
        super().__init__(daemon=True)
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.deals = dict(deal_ids)  # deal id → our idea of its current stage
        self.deadline = deadline
        self.report_ok = report_ok
        self.rng = random.Random(rng_seed)
        self.samples: list[tuple[str, float, int]] = []  # (op, seconds, status or 0 = error)
        self.acked = {"leads": [], "activities": [], "moves": []}
        self.conn = None

    def request(self, method, path, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        payload = response.read()
        return response.status, payload

    def op(self):
        r = self.rng.random()
        if r < 0.20:
            return (
                "list leads",
                "GET",
                f"/api/v1/leads?limit=50&ordering={self.rng.choice(['created_at', '-created_at'])}",
                None,
            )
        if r < 0.35:
            return "list deals", "GET", "/api/v1/deals?status=open&limit=50", None
        if r < 0.45:
            return (
                "list activities",
                "GET",
                "/api/v1/activities?limit=50&ordering=-created_at",
                None,
            )
        if r < 0.55:
            if self.report_ok:
                return "report funnel", "GET", "/api/v1/reports/funnel", None
            return "list leads", "GET", "/api/v1/leads?limit=20", None
        if r < 0.72:
            n = self.rng.randrange(10**9)
            return (
                "create lead",
                "POST",
                "/api/v1/leads",
                {
                    "name": f"压测线索{n}",
                    "company": f"压测公司{n}",
                    "email": f"load{n}@example.com",
                    "source": "官网",
                    "budget": "50000.00",
                },
            )
        if not self.deals:
            return "list deals", "GET", "/api/v1/deals?limit=20", None
        deal_id = self.rng.choice(list(self.deals))
        if r < 0.87:
            return (
                "log activity",
                "POST",
                "/api/v1/activities",
                {
                    "kind": "call",
                    "deal_id": deal_id,
                    "subject": "跟进",
                    "done_at": dt.datetime.now(dt.UTC).isoformat(),
                },
            )
        current = self.deals[deal_id]
        target = self.rng.choice([s for s in OPEN_STAGES if s != current])
        return "move deal", "POST", f"/api/v1/deals/{deal_id}/move", {"stage": target}

    def run(self):
        while time.monotonic() < self.deadline:
            name, method, path, body = self.op()
            started = time.perf_counter()
            try:
                status, payload = self.request(method, path, body)
            except (OSError, http.client.HTTPException):
                self.samples.append((name, time.perf_counter() - started, 0))
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                continue
            self.samples.append((name, time.perf_counter() - started, status))
            if status in (200, 201) and method == "POST":
                data = json.loads(payload)
                if name == "create lead":
                    self.acked["leads"].append(data["id"])
                elif name == "log activity":
                    self.acked["activities"].append(data["id"])
                elif name == "move deal":
                    self.deals[data["id"]] = data["stage"]
                    self.acked["moves"].append((data["id"], data["stage"]))
        if self.conn is not None:
            self.conn.close()


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("the server exited while starting")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/openapi.json")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not come up")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_one(db: str, duration: int, leads: int, conn_max_age: int = 0) -> dict:
    env = {
        **os.environ,
        "LEAKMAP_CONN_MAX_AGE": str(conn_max_age),
        "LEAKMAP_SECRET_KEY": "api-load-benchmark",
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
    }
    workdir = tempfile.mkdtemp(prefix="leakmap-load-")
    if db == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    else:
        subprocess.run(
            ["psql", PG_ADMIN_URL, "-qc", f"DROP DATABASE IF EXISTS {PG_BENCH_DB}"], check=True
        )
        subprocess.run(["psql", PG_ADMIN_URL, "-qc", f"CREATE DATABASE {PG_BENCH_DB}"], check=True)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{PG_BENCH_DB}"
    print(f"[{db}] seeding {leads} leads …", flush=True)
    seeded, how = seed_database(env, leads, workdir)
    port = free_port()
    log = open(Path(workdir) / "server.log", "w")  # noqa: SIM115 — closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leakmap",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_up(port, server)
        tokens = seeded["tokens"]
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        probe.request(
            "GET",
            "/api/v1/reports/funnel",
            headers={"Authorization": f"Bearer {next(iter(tokens.values()))}"},
        )
        report_ok = probe.getresponse().status == 200
        started_at = dt.datetime.now(dt.UTC).isoformat()
        deadline = time.monotonic() + duration
        clients = []
        usernames = sorted(tokens)
        per_rep = -(-CLIENTS // len(usernames))
        for i in range(CLIENTS):
            user = usernames[i % len(usernames)]
            mine = seeded["open_deals"].get(user, [])
            # Clients sharing a rep each get their own slice of the rep's deals, so that none
            # moves a deal behind another's back.
            half = mine[(i // len(usernames)) :: per_rep]
            clients.append(Client(port, tokens[user], half, deadline, report_ok, rng_seed=i))
        t0 = time.monotonic()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - t0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()

    samples = [s for c in clients for s in c.samples]
    acked = {"leads": [], "activities": [], "moves": [], "started_at": started_at}
    for c in clients:
        for k in ("leads", "activities", "moves"):
            acked[k] += c.acked[k]
    ids_file = Path(workdir) / "acked.json"
    ids_file.write_text(json.dumps(acked))
    counted = json.loads(
        run_django(env, str(Path(__file__).resolve()), "--count", str(ids_file))
        .strip()
        .splitlines()[-1]
    )
    if db == "postgres":
        subprocess.run(
            ["psql", PG_ADMIN_URL, "-qc", f"DROP DATABASE IF EXISTS {PG_BENCH_DB}"], check=False
        )

    by_op: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for name, seconds, status in samples:
        by_op[name].append((seconds, status))
    statuses = Counter(status for _n, _s, status in samples)
    result = {
        "db": db,
        "elapsed": elapsed,
        "requests": len(samples),
        "throughput": len(samples) / elapsed,
        "p50": percentile([s for _n, s, _st in samples], 0.50),
        "p95": percentile([s for _n, s, _st in samples], 0.95),
        "p99": percentile([s for _n, s, _st in samples], 0.99),
        "errors": sum(n for st, n in statuses.items() if st == 0 or st >= 500),
        "rejected": sum(n for st, n in statuses.items() if 400 <= st < 500),
        "statuses": dict(statuses),
        "ops": {
            name: {
                "n": len(v),
                "p50": percentile([s for s, _ in v], 0.5),
                "p95": percentile([s for s, _ in v], 0.95),
                "p99": percentile([s for s, _ in v], 0.99),
                "non_2xx": sum(1 for _s, st in v if not 200 <= st < 300),
            }
            for name, v in sorted(by_op.items())
        },
        "counted": counted,
        "report": report_ok,
        "seed_leads": leads,
        "conn_max_age": conn_max_age,
        "data": how,
        "reps": len(tokens),
    }
    print(json.dumps(result, indent=1, default=str), flush=True)
    return result


# --- Recording ------------------------------------------------------------------------------


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def ms(x: float) -> str:
    return f"{x * 1000:.0f}"


def section(results: list[dict], duration: int) -> str:
    lines = [
        "## API load",
        "",
        f"`python benchmarks/api_load.py` — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}.",
        f"`leakmap serve --workers 2` (gunicorn gthread, 4 threads/worker), {CLIENTS} client threads "
        f"with keep-alive connections and one token per rep ({results[0]['reps']} reps), {duration} s "
        f"per database. Data: {results[0]['data']}. "
        "Mix: 20 % list leads, 15 % list open deals, 10 % list activities, 10 % funnel report, "
        "17 % create lead, 15 % log a done call on a deal, 13 % move a deal to another open stage. "
        "The machine was shared with other jobs while measuring, so treat the figures as a floor.",
        "",
        "| database | LEAKMAP_CONN_MAX_AGE | seed leads | requests | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors (5xx / connection) | 4xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['db']} | {r['conn_max_age']} | {r['seed_leads']} | {r['requests']} | {r['throughput']:.1f} | {ms(r['p50'])} | "
            f"{ms(r['p95'])} | {ms(r['p99'])} | {r['errors']} | {r['rejected']} |"
        )
    lines += ["", "Per operation (p50 / p95 / p99 ms, count):", ""]
    lines += [
        "| database | operation | n | p50 | p95 | p99 | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, o in r["ops"].items():
            lines.append(
                f"| {r['db']} ({r['conn_max_age']}) | {name} | {o['n']} | {ms(o['p50'])} | {ms(o['p95'])} | {ms(o['p99'])} | {o['non_2xx']} |"
            )
    lines += [
        "",
        "Acknowledged writes found in the database after the run (found / acknowledged):",
        "",
    ]
    for r in results:
        c = r["counted"]
        lines.append(
            f"- {r['db']} (LEAKMAP_CONN_MAX_AGE={r['conn_max_age']}): leads {c['leads'][0]}/{c['leads'][1]}, activities "
            f"{c['activities'][0]}/{c['activities'][1]}, stage moves {c['moves'][0]}/{c['moves'][1]}"
        )
    return "\n".join(lines) + "\n"


def record(text: str) -> None:
    existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    start = existing.find("## API load")
    if start == -1:
        updated = existing.rstrip("\n") + "\n\n" + text
    else:
        end = existing.find("\n## ", start + 1)
        updated = existing[:start] + text + (existing[end + 1 :] if end != -1 else "")
    RESULTS.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument(
        "--pg-conn-max-age",
        default="0,60",
        help="PostgreSQL runs, one per LEAKMAP_CONN_MAX_AGE value (comma-separated)",
    )
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed is not None:
        sys.path.insert(0, str(ROOT))
        seed(args.seed)
        return
    if args.tokens:
        sys.path.insert(0, str(ROOT))
        tokens_for_reps()
        return
    if args.count:
        sys.path.insert(0, str(ROOT))
        count(args.count)
        return
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    ages = [int(a) for a in args.pg_conn_max_age.split(",") if a.strip()]
    runs = [(db, age) for db in dbs for age in (ages if db == "postgres" else [0])]
    results = [run_one(db, args.duration, args.leads, age) for db, age in runs]
    text = section(results, args.duration)
    print(text)
    if not args.no_record:
        record(text)


if __name__ == "__main__":
    main()
