"""`leakmap report` as a user runs it: formats, filters, and exit 2 with a message on bad input."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leakmap.analytics.base import ReportResult
from leakmap.analytics.render import render
from leakmap.crm.models import LostReason
from tests.analytics.journeys import day, deal, lead

REPO = Path(__file__).resolve().parents[2]


def report(*args) -> str:
    out = io.StringIO()
    call_command("report", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_contract_json_body(company):
    body = json.loads(report("owners", "--format", "json", "--as-of", "2026-02-04T09:00:00Z"))
    assert set(body) == {"report", "as_of", "period", "rows"}
    assert body["report"] == "owners" and body["as_of"] == "2026-02-04T09:00:00+00:00"
    assert body["period"] == {"from": None, "to": None}
    alice = next(r for r in body["rows"] if r["owner"] == "alice")
    assert (alice["deals"], alice["won_amount"]) == (3, 2000.0)


def test_it_reads_a_bare_as_of_in_local_time_and_filters_the_period(company):
    body = json.loads(
        report(
            "funnel",
            "--format",
            "json",
            "--from",
            "2026-01-06",
            "--to",
            "2026-01-06",
            "--as-of",
            "2026-02-01",
        )
    )
    assert body["as_of"] == "2026-02-01T00:00:00+08:00"
    assert body["period"] == {"from": "2026-01-06", "to": "2026-01-06"}
    assert body["rows"][1]["count"] == 2  # D2 and D6 were made on day 1 (Jan 6 local)


def test_it_writes_csv_with_contract_columns(company):
    got = list(
        csv.DictReader(io.StringIO(report("owners", "--format", "csv", "--team", "华东一组")))
    )
    assert [r["owner"] for r in got] == ["bob", "alice"]
    assert got[1]["reached:proposal"] == "3" and got[1]["win_rate"] == str(1 / 3)


def test_it_draws_a_table_with_totals(company):
    text = report("owners", "--owner", "alice")
    assert "alice".title() in text or "Alice" in text
    assert "合计" in text or "Total" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch"], "nosuch"),
        (["funnel", "--owner", "nobody"], "nobody"),
        (["funnel", "--team", "无此组"], "无此组"),
        (["funnel", "--source", "x"], "--source"),
        (["funnel", "--from", "2026-02-30"], "2026-02-30"),
        (["funnel", "--from", "2026-03-01", "--to", "2026-02-01"], "2026-03-01"),
        (["funnel", "--as-of", "yesterday"], "yesterday"),
        (["funnel", "--format", "xml"], "xml"),
    ],
)
def test_it_refuses_bad_input_with_exit_2(db, args, message):
    with pytest.raises(CommandError) as err:
        report(*args)
    assert err.value.returncode == 2
    assert message in str(err.value)


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
    reason="runs the CLI against a throwaway SQLite file",
)
def test_it_exits_2_without_a_traceback_as_a_process(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "PYTHONPATH": str(REPO),
    }
    env.pop("DATABASE_TEST_NAME", None)
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "leakmap", *a], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run("migrate", "-v0").returncode == 0
    bad = run("report", "funnel", "--owner", "nobody")
    assert bad.returncode == 2 and "nobody" in bad.stderr and "Traceback" not in bad.stderr
    ok = run("report", "stuck", "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows"] == []


def test_it_escapes_names_that_a_spreadsheet_would_run_as_a_formula_in_csv(rep):
    reason = LostReason.objects.create(name='=HYPERLINK("http://evil","x")')
    deal(owner=rep, created=day(0), amount=1500).lost(day(3), reason=reason.name)
    lead(owner=rep, created=day(0), source="+86 渠道")
    lost = list(csv.DictReader(io.StringIO(report("lost-reasons", "--format", "csv"))))
    assert [(r["reason"], r["deals"], r["amount"]) for r in lost] == [
        ('\'=HYPERLINK("http://evil","x")', "1", "1500.0")
    ]
    sources = list(csv.DictReader(io.StringIO(report("sources", "--format", "csv"))))
    assert [(r["source"], r["leads"]) for r in sources] == [("'+86 渠道", "1")]


def test_it_leaves_numbers_alone_in_csv_even_negative_ones(db):
    @dataclasses.dataclass
    class Row:
        name: str
        count: int
        amount: Decimal
        rate: float
        when: dt.date

    result = ReportResult(
        report="demo",
        as_of=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        period={"from": None, "to": None},
        rows=[
            Row("-5", -5, Decimal("-5.00"), -0.25, dt.date(2026, 1, 5)),
            Row("@owner", 0, Decimal("0"), 0.5, dt.date(2026, 1, 6)),
        ],
    )
    assert list(csv.reader(io.StringIO(render(result, "csv")))) == [
        ["name", "count", "amount", "rate", "when"],
        ["'-5", "-5", "-5.0", "-0.25", "2026-01-05"],
        ["'@owner", "0", "0.0", "0.5", "2026-01-06"],
    ]


# Codes the weekly body carries that a reader must never see in the terminal.
WEEKLY_CODES = (
    "by_owner",
    "top_lost_reasons",
    "leads_this_week",
    "deals_last_week",
    "won_amount_this_week",
    " down ",
    " up ",
    "weeks",
    "修改",
)


@pytest.mark.parametrize(
    "lang, words",
    [
        ("zh-hans", ("变化", "所选周", "前一周", "按销售", "所选周线索", "所选周主要输单原因")),
        ("en", ("Change", "Reviewed week", "Week before", "By rep", "Top lost reasons of")),
    ],
)
def test_it_labels_the_weekly_review_in_the_terminal_as_the_page_does(company, lang, words):
    from django.utils import translation

    with translation.override(lang):
        text = report("weekly", "--week", "2026-W03", "--as-of", "2026-01-20")
    for word in words:
        assert word in text
    for code in WEEKLY_CODES:
        assert code not in text
    assert "▼" in text  # deals created: none against 6 the week before
    # Owners by display name, the week in the header line.
    assert "alice " not in text and "2026-01-12 → 2026-01-18" in text


def test_it_prints_the_diagnosis_coaching_with_samples_and_step_names(company):
    text = report("diagnosis")
    assert "lead_to_deal" not in text and "lead→deal" not in text
    assert "线索 → 商机" in text
    # alice: 3 deals, none of them from a lead; the rest of the team has 3 as well.
    assert "(0/3)" in text or "–" in text


def test_it_reviews_the_chosen_week_and_refuses_a_bad_one(company):
    body = json.loads(
        report("weekly", "--week", "2026-W03", "--as-of", "2026-01-20", "--format", "json")
    )
    assert body["week"] == "2026-W03" and body["period"]["from"] == "2026-01-12"
    default = json.loads(report("weekly", "--as-of", "2026-01-20", "--format", "json"))
    assert default["week"] == "2026-W03"  # the last complete week before Tuesday 01-20
    for args, message in (
        (["weekly", "--week", "2026-3"], "2026-3"),
        (["funnel", "--week", "2026-W03"], "--week"),
        (["weekly", "--week", "2026-W05", "--as-of", "2026-01-20"], "2026-01-26"),
    ):
        with pytest.raises(CommandError) as err:
            report(*args)
        assert err.value.returncode == 2 and message in str(err.value)
