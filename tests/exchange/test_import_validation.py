"""Every kind of bad input: its own message naming file, row, column and value; exit code 2;
and nothing written, while every bad row is listed."""

from __future__ import annotations

import pytest
from django.utils import translation

from leakmap.crm.models import Lead
from tests.exchange.helpers import db_counts, import_fails, run_import, write
from tests.factories import LeadFactory, make_deal

pytestmark = pytest.mark.django_db

LEADS_HEAD = "external_id,name,owner,status,created_at,budget,disqualified_reason\n"
DEALS_HEAD = "external_id,lead_external_id,name,amount,stage,owner,created_at,expected_close_date,closed_at,lost_reason,competitor\n"


@pytest.fixture
def existing(rep):
    """A lead and a deal already in the database, so references and updates have targets."""
    lead = LeadFactory(external_id="L-OLD", owner=rep, name="Old lead")
    deal = make_deal(owner=rep, external_id="D-OLD", stage_key="needs_analysis")
    return lead, deal


CASES = [
    # (kind, file text, expected error line without the "FILE:" prefix)
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,new,2026-02-30,,\n",
        "2: column created_at: value '2026-02-30': not a date/time",
    ),
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,new,2026-01-05,-10,\n",
        "2: column budget: value '-10': cannot be negative",
    ),
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,new,2026-01-05,12k,\n",
        "2: column budget: value '12k': not a number",
    ),
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,hot,2026-01-05,,\n",
        "2: column status: value 'hot': unknown; use one of",
    ),
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,disqualified,2026-01-05,,\n",
        "2: column disqualified_reason: value '': a disqualified lead needs a reason",
    ),
    (
        "leads",
        LEADS_HEAD + "L1,张三,alice,new,2026-01-05,,\nL1,李四,alice,new,2026-01-06,,\n",
        "3: column external_id: value 'L1': appears twice in this file (first on row 2)",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,closing,alice,2026-01-06,,,,\n",
        "2: column stage: value 'closing': unknown stage; use one of qualification",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,lost,alice,2026-01-06,,2026-02-01,,\n",
        "2: column lost_reason: value '': a lost deal needs a lost reason",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,输单,alice,2026-01-06,,2026-02-01,被竞争对手拿下,\n",
        "2: column competitor: value '': lost reason '被竞争对手拿下' needs the competitor the deal was lost to",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,Closed won,alice,2026-01-06,2026-03-01,,,\n",
        "2: column closed_at: value '': a won deal needs closed_at",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,won,alice,2026-01-06,2026-03-01,2026-01-01,,\n",
        "2: column closed_at: value '2026-01-01': before the deal's created_at (2026-01-06)",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,-5,qualification,alice,2026-01-06,,,,\n",
        "2: column amount: value '-5': cannot be negative",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-NOPE,Deal,100,qualification,alice,2026-01-06,,,,\n",
        "2: column lead_external_id: value 'L-NOPE': no lead with this external_id in the database",
    ),
    (
        "deals",
        DEALS_HEAD + "D1,L-OLD,Deal,100,proposal,alice,2026-01-06,,,,\n",
        "2: column expected_close_date: value '': required to be in stage proposal",
    ),
    (
        "deals",
        DEALS_HEAD
        + "D1,L-OLD,Deal,100,qualification,alice,2026-01-06,,,,\nD1,L-OLD,Deal,100,qualification,alice,2026-01-06,,,,\n",
        "3: column external_id: value 'D1': appears twice in this file (first on row 2)",
    ),
    (
        "stage-history",
        "deal_external_id,stage,entered_at\nD-NOPE,qualification,2026-01-05T09:00\n",
        "2: column deal_external_id: value 'D-NOPE': no deal with this external_id in the database",
    ),
    (
        "stage-history",
        "deal_external_id,stage,entered_at\nD-OLD,qualification,2026-01-05T17:00\nD-OLD,proposal,2026-01-07\n",
        "3: column stage: value 'proposal': the deal's latest entry must be its current stage needs_analysis",
    ),
    (
        "users",
        "username,role\nzoe,boss\n",
        "2: column role: value 'boss': unknown; use one of admin, manager, rep",
    ),
    (
        "users",
        "username,role,manager\nzoe,rep,nobody\n",
        "2: column manager: value 'nobody': no such user in the database or in this file",
    ),
    (
        "activities",
        "external_id,deal_external_id,kind,done_at\nA1,D-OLD,visit,2026-01-08\n",
        "2: column kind: value 'visit': unknown; use one of call, email, meeting, note, task",
    ),
    (
        "activities",
        "external_id,deal_external_id,kind,done_at\nA1,D-NOPE,call,2026-01-08\n",
        "2: column deal_external_id: value 'D-NOPE': no deal with this external_id in the database",
    ),
    (
        "spend",
        "source,month,amount\n百度广告,2026-13,100\n",
        "2: column month: value '2026-13': not a month; use YYYY-MM",
    ),
    (
        "spend",
        "source,month,amount\n百度广告,2026-01,-1\n",
        "2: column amount: value '-1': cannot be negative",
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_it_rejects_bad_input_with_a_message_and_writes_nothing(
    tmp_path, existing, kind, text, expected
):
    path = write(tmp_path / f"{kind}.csv", text)
    before = db_counts()
    lines = import_fails(kind, path)
    assert any(line.startswith(f"{path}:{expected}") for line in lines), lines
    assert lines[-1].endswith("nothing was imported")
    assert db_counts() == before


def test_it_lists_every_bad_row_and_writes_not_even_the_good_ones(tmp_path, rep):
    path = write(
        tmp_path / "leads.csv",
        LEADS_HEAD
        + "L1,好的,alice,new,2026-01-05,100,\n"
        + "L2,坏的,alice,new,yesterday,100,\n"
        + "L3,也好,alice,new,2026-01-05,100,\n"
        + "L4,更坏,alice,bogus,2026-01-05,-1,\n",
    )
    lines = import_fails("leads", path)
    assert lines == [
        f"{path}:3: column created_at: value 'yesterday': not a date/time; use ISO 8601 such as 2026-03-01 or 2026-03-01T14:30",
        f"{path}:5: column status: value 'bogus': unknown; use one of contacted, converted, disqualified, new, qualified",
        f"{path}:5: column budget: value '-1': cannot be negative",
        f"2 bad row(s) in {path}; nothing was imported",
    ]
    assert Lead.objects.count() == 0


def test_it_rejects_unknown_and_missing_columns_in_the_header(tmp_path, rep):
    path = write(tmp_path / "leads.csv", "external_id,nom,created_at\nL1,x,2026-01-05\n")
    lines = import_fails("leads", path)
    assert lines[0].startswith(
        f"{path}:1: unknown column 'nom' (the leads columns are: external_id, name,"
    )
    assert f"{path}:1: required column 'name' is missing" in lines
    assert Lead.objects.count() == 0


def test_it_rejects_a_file_that_is_neither_csv_nor_xlsx(tmp_path, rep):
    path = write(tmp_path / "leads.json", "[]")
    assert import_fails("leads", path) == [f"{path}: use a .csv or .xlsx file"]


def test_it_rejects_a_history_entry_into_the_same_stage_twice_and_before_creation(
    tmp_path, existing
):
    _, deal = existing
    path = write(
        tmp_path / "h.csv",
        "deal_external_id,stage,entered_at\n"
        "D-OLD,qualification,2025-12-31\n"
        "D-OLD,qualification,2026-01-06\n"
        "D-OLD,needs_analysis,2026-01-07\n",
    )
    lines = import_fails("stage-history", path)
    assert lines[0].startswith(
        f"{path}:2: column entered_at: value '2025-12-31': before the deal was created"
    )
    assert lines[1].startswith(
        f"{path}:3: column stage: value 'qualification': the deal is already in this stage (row 2)"
    )
    assert deal.stage_changes.count() == 1


def test_it_validates_everything_in_a_dry_run_and_writes_nothing(tmp_path, rep):
    path = write(
        tmp_path / "leads.csv",
        LEADS_HEAD + "L1,张三,alice,new,2026-01-05,100,\nL2,李四,newbie,new,2026-01-05,,\n",
    )
    out, _ = run_import("leads", path, "--dry-run")
    assert out.splitlines() == [
        "dry run, nothing written — leads: 2 rows, 2 created, 0 updated",
        "new lookups: 1 owner",
    ]
    assert Lead.objects.count() == 0
    assert not type(rep).objects.filter(username="newbie").exists()


def test_it_explains_in_chinese_by_default(tmp_path, rep):
    path = write(tmp_path / "leads.csv", LEADS_HEAD + "L1,张三,alice,new,2026-01-05,-10,\n")
    with translation.override("zh-hans"):
        lines = import_fails("leads", path)
    assert lines == [
        f"{path}:2: column budget: value '-10': 不能为负数",
        f"{path} 中有 1 行错误;未导入任何数据",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "a@example.com",
        "a.b+c@sub.example.cn",
        "a@localhost",
        "a@[127.0.0.1]",
        "a@[::1]",
        "a@[999.1.1.1]",
        "a@example",
        "a@-bad.com",
        "a b@example.com",
        "@example.com",
        "a@",
        "noatsign",
        '"quoted user"@example.com',
        "张三@例子.中国",
        "x" * 310 + "@example.com",
    ],
)
def test_the_cached_email_check_agrees_with_djangos_validator(value):
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from leakmap.exchange.importers.base import email_ok

    try:
        validate_email(value)
        expected = True
    except ValidationError:
        expected = False
    assert email_ok(value) is expected
    assert email_ok(value) is expected  # again, from the domain cache


def test_rows_shorter_than_the_header_read_blank_cells():
    from leakmap.exchange.importers.base import row_maker

    make = row_maker({"a": 0, "b": 2, "c": 1})
    row = make(7, [" x ", "y", " z"])
    assert (row.n, dict(row)) == (7, {"a": "x", "b": "z", "c": "y"})
    short = make(8, ["x"])
    assert (short.n, short["a"], short["b"], short["c"]) == (8, "x", "", "")
    assert make(9, ["  q "])["a"] == "q"
    assert dict(row_maker({"only": 1})(3, ["", " v "])) == {"only": "v"}


@pytest.mark.parametrize("preload_after", [0, 20_000])
def test_activity_references_resolve_alike_read_per_batch_or_all_at_once(
    tmp_path, existing, rep, monkeypatch, preload_after
):
    """A big activities import reads every deal's and lead's ids once instead of per batch
    (References); a small one looks them up per batch. Both give the same rows and errors."""
    from leakmap.crm.models import Activity
    from leakmap.exchange.importers.base import References

    monkeypatch.setattr(References, "PRELOAD_AFTER", preload_after)
    head = "external_id,deal_external_id,lead_external_id,kind,done_at,due_at\n"
    bad = write(
        tmp_path / "bad.csv", head + "A1,D-OLD,,call,2026-01-08,\nA2,,L-NOPE,call,,2026-01-09\n"
    )
    lines = import_fails("activities", bad)
    assert lines[0].endswith(
        "3: column lead_external_id: value 'L-NOPE': no lead with this external_id in the database"
    )
    good = write(
        tmp_path / "good.csv", head + "A1,D-OLD,,call,2026-01-08,\nA2,,L-OLD,email,,2026-01-09\n"
    )
    run_import("activities", good)
    lead, deal = existing
    assert sorted(
        Activity.objects.values_list("external_id", "deal_id", "lead_id", "owner__username")
    ) == [("A1", deal.pk, deal.lead_id, "alice"), ("A2", None, lead.pk, "alice")]
    deal.refresh_from_db()
    assert deal.follow_up_count == 1
