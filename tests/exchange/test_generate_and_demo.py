"""The synthetic data set: deterministic per seed, realistic in shape, importable as is; and the
demo company that is built from it once."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Avg
from django.utils import translation

from leakmap.accounts.models import User
from leakmap.crm.models import Deal, Lead, Spend, StageChange, StageKind
from leakmap.exchange.columns import FILE_NAMES, IMPORT_ORDER
from leakmap.exchange.generator import generate
from tests.exchange.helpers import run_import

REPO = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[1:]


def test_it_generates_the_same_files_for_the_same_seed(tmp_path):
    a = generate(tmp_path / "a", leads=1500, seed=7)
    b = generate(tmp_path / "b", leads=1500, seed=7)
    c = generate(tmp_path / "c", leads=1500, seed=8)
    assert a == b
    for name in FILE_NAMES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "deals.csv").read_bytes() != (
        tmp_path / "c" / "deals.csv"
    ).read_bytes()
    assert c["leads"] == 1500


def test_it_generates_a_realistic_funnel(tmp_path):
    counts = generate(tmp_path, leads=6000, seed=3)
    share = counts["deals"] / counts["leads"]
    assert 0.25 <= share <= 0.35
    deals = [line.split(",") for line in _rows(tmp_path / "deals.csv")]
    stages = [d[6] for d in deals]
    lost, won = stages.count("lost"), stages.count("won")
    # Most deals die; a minority is won; every lost deal has a reason, competitor losses a name.
    assert lost > won > 0.08 * len(deals)
    assert all(d[13] for d in deals if d[6] == "lost")
    assert all(d[14] for d in deals if d[13] == "被竞争对手拿下")
    # Sources differ: 百度广告 many leads that rarely close, 老客户转介绍 few that often do.
    leads = [line.split(",") for line in _rows(tmp_path / "leads.csv")]
    by_source = {}
    for row in leads:
        by_source.setdefault(row[5], []).append(row[0])
    lead_source = {row[0]: row[5] for row in leads}
    won_by_source = {}
    for d in deals:
        if d[6] == "won":
            won_by_source[lead_source[d[1]]] = won_by_source.get(lead_source[d[1]], 0) + 1
    baidu = won_by_source["百度广告"] / len(by_source["百度广告"])
    referral = won_by_source["老客户转介绍"] / len(by_source["老客户转介绍"])
    assert len(by_source["百度广告"]) > 5 * len(by_source["老客户转介绍"])
    assert baidu < 0.04 and referral > 0.18
    # Some deals skip a stage (e.g. qualification straight to proposal) and some reopen.
    history = [line.split(",") for line in _rows(tmp_path / "stage-history.csv")]
    paths: dict[str, list[str]] = {}
    for deal, stage, _ in history:
        paths.setdefault(deal, []).append(stage)
    assert any("lost" in p[:-1] for p in paths.values())
    assert any(p[:2] == ["qualification", "proposal"] for p in paths.values())


@pytest.mark.django_db
def test_it_imports_a_generated_set_and_its_facts_match_a_recompute(tmp_path):
    generate(tmp_path, leads=400, seed=11)
    for kind in IMPORT_ORDER:
        run_import(kind, tmp_path / FILE_NAMES[kind])
    assert Lead.objects.count() == 400
    deals = Deal.objects.count()
    assert deals == len(_rows(tmp_path / "deals.csv"))
    assert Spend.objects.count() == len(_rows(tmp_path / "spend.csv"))
    from leakmap.crm import services

    before = list(
        Deal.objects.order_by("pk").values_list(
            "pk",
            "reached_order",
            "lost_at_stage",
            "stage_entered_at",
            "last_follow_up_at",
            "follow_up_count",
        )
    )
    leads_before = list(
        Lead.objects.order_by("pk").values_list("pk", "first_contacted_at", "status")
    )
    entries_before = list(
        StageChange.objects.order_by("pk").values_list("pk", "left_at", "reached_before")
    )
    services.deals_refresh_facts()
    services.leads_refresh_facts()
    services.stage_entries_refresh_facts()
    assert entries_before == list(
        StageChange.objects.order_by("pk").values_list("pk", "left_at", "reached_before")
    )
    assert before == list(
        Deal.objects.order_by("pk").values_list(
            "pk",
            "reached_order",
            "lost_at_stage",
            "stage_entered_at",
            "last_follow_up_at",
            "follow_up_count",
        )
    )
    assert leads_before == list(
        Lead.objects.order_by("pk").values_list("pk", "first_contacted_at", "status")
    )


@pytest.mark.django_db
def test_it_loads_the_demo_company_once_with_its_leaks(monkeypatch):
    out = io.StringIO()
    with translation.override("zh-hans"):  # the install's default language
        call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "admin" in text and "xiaowang" in text
    leads = Lead.objects.count()
    assert 1900 <= leads <= 2100
    logins = {
        line.split()[0]: line.split()[2]
        for line in text.splitlines()
        if len(line.split()) == 3 and line.split()[1] in ("admin", "manager", "rep")
    }
    # The summary names the planted leaks: 小李 dies in negotiation, 小王 goes cold after the
    # proposal, 百度广告 brings leads that do not convert.
    leaks = [line for line in text.splitlines() if line.startswith("  •")]
    assert any("小李" in line and "谈判" in line for line in leaks), leaks
    assert any("小王" in line and "跟进" in line for line in leaks), leaks
    assert any("百度广告" in line for line in leaks), leaks
    assert set(logins) == {"admin", "zhoujingli", "wujingli", "xiaowang"}
    for username, password in logins.items():
        assert User.objects.get(username=username).check_password(password)
    reps = {u.display_name for u in User.objects.filter(role="rep")}
    assert {"小李", "小王", "小张"} <= reps
    wang = Deal.objects.filter(owner__display_name="小王").aggregate(a=Avg("follow_up_count"))["a"]
    zhang = Deal.objects.filter(owner__display_name="小张").aggregate(a=Avg("follow_up_count"))["a"]
    assert wang < 3.6 < 5.2 < zhang
    start = Lead.objects.order_by("created_at").first().created_at
    assert dt.date.today() - start.date() <= dt.timedelta(days=183)

    again = io.StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert "not loaded" in again.getvalue()
    assert Lead.objects.count() == leads
    assert Deal.objects.filter(stage__kind=StageKind.WON).exists()


def _cli(tmp_path, *args):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "PYTHONPATH": str(REPO),
        "LEAKMAP_LANGUAGE": "en",
    }
    env.pop("DATABASE_TEST_NAME", None)
    return subprocess.run(
        [sys.executable, "-m", "leakmap", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
    reason="a throwaway SQLite file",
)
def test_it_fails_with_exit_code_2_in_a_real_process_and_then_imports(tmp_path):
    assert _cli(tmp_path, "migrate", "-v0").returncode == 0
    bad = tmp_path / "leads.csv"
    bad.write_text(
        "external_id,name,created_at,budget\nL1,张三,2026-01-05,abc\nL2,李四,someday,5\n",
        encoding="utf-8",
    )
    result = _cli(tmp_path, "import", "leads", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines()[:2] == [
        f"{bad}:2: column budget: value 'abc': not a number",
        f"{bad}:3: column created_at: value 'someday': not a date/time; use ISO 8601 such as 2026-03-01 or 2026-03-01T14:30",
    ]
    assert "Traceback" not in result.stderr
    missing = _cli(tmp_path, "import", "deals", str(tmp_path / "nope.csv"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        f"CommandError: {tmp_path / 'nope.csv'}: no such file",
    )

    gen = _cli(tmp_path, "generate", "--leads", "300", "--seed", "5", "--out", str(tmp_path / "g"))
    assert gen.returncode == 0, gen.stderr
    for kind in IMPORT_ORDER:
        done = _cli(tmp_path, "import", kind, str(tmp_path / "g" / FILE_NAMES[kind]))
        assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("spend: ")
    exported = _cli(tmp_path, "export", "leads", str(tmp_path / "out.xlsx"))
    assert exported.stdout.strip() == f"leads: 300 rows written to {tmp_path / 'out.xlsx'}"
