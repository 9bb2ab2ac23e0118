"""Imports keep their promise on hostile or odd files: an .xlsx that unpacks to far more than it
weighs is refused before it is parsed, an over-long cell, a character no database stores, a time
outside 2000-01-01 … now (or a plan outside 2000 … 2999) are row errors naming file, row and
column; always exit code 2, a message, and nothing written, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone

from leakmap.crm.models import Activity, Deal, Lead, Spend, StageChange
from leakmap.exchange.columns import FILE_NAMES, IMPORT_ORDER
from leakmap.exchange.generator import generate
from tests.exchange.helpers import db_counts, import_fails, run_import, write
from tests.factories import LeadFactory, make_deal

pytestmark = pytest.mark.django_db

LEADS_HEAD = "external_id,name,created_at\n"
MAX_CELL_CHARS = 10_000  # the documented limit (limits.MAX_CELL_CHARS)

# --- building .xlsx files by hand, part by part ----------------------------------------------

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="leads" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
SHEET_HEAD = '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
SHEET_TAIL = "</sheetData></worksheet>"


def _shared_row(n: int, indexes: list[int]) -> str:
    cells = "".join(
        f'<c r="{col}{n}" t="s"><v>{i}</v></c>' for col, i in zip("ABC", indexes, strict=False)
    )
    return f'<row r="{n}">{cells}</row>'


def write_bomb(path: Path, unpacked_mb: int) -> Path:
    """A leads .xlsx of one row whose name, a shared string, is `unpacked_mb` MB of "A": a few
    hundred KB on disk that openpyxl would unpack whole into memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        zf.writestr(
            "xl/worksheets/sheet1.xml",
            SHEET_HEAD + _shared_row(1, [0, 1, 2]) + _shared_row(2, [3, 4, 5]) + SHEET_TAIL,
        )
        with zf.open("xl/sharedStrings.xml", "w") as fh:
            fh.write(
                b'<?xml version="1.0" encoding="UTF-8"?>'
                b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                b"<si><t>external_id</t></si><si><t>name</t></si><si><t>created_at</t></si>"
                b"<si><t>L1</t></si><si><t>"
            )
            chunk = b"A" * (1 << 20)
            for _ in range(unpacked_mb):
                fh.write(chunk)
            fh.write(b"</t></si><si><t>2026-01-05</t></si></sst>")
    return path


def write_leads_xlsx(path: Path, rows: list[list]) -> Path:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("leads")
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


# --- archives ------------------------------------------------------------------------------------


def test_it_refuses_a_zip_bomb_before_unpacking_it(tmp_path, rep):
    path = write_bomb(tmp_path / "bomb.xlsx", unpacked_mb=64)
    assert path.stat().st_size < 1_000_000  # ~0.1 MB on disk, 64 MB unpacked
    before = db_counts()
    started = time.monotonic()
    lines = import_fails("leads", path)
    assert time.monotonic() - started < 5  # openpyxl would read the 64 MB string whole first
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: its part xl/sharedStrings.xml unpacks ")
    assert "more than the limit of 100 (LEAKMAP_IMPORT_MAX_RATIO)" in lines[0]
    assert db_counts() == before


def test_it_refuses_an_archive_that_unpacks_past_the_configured_size(tmp_path, rep, monkeypatch):
    # Random names: an honest file that compresses about as little as real data does.
    rows = [["external_id", "name", "created_at"]]
    rows += [[f"L{i}", os.urandom(90).hex(), "2026-01-05"] for i in range(5000)]
    path = write_leads_xlsx(tmp_path / "leads.xlsx", rows)
    with zipfile.ZipFile(path) as zf:
        unpacked = sum(m.file_size for m in zf.infolist())
    assert 1024 * 1024 < unpacked < 2 * 1024 * 1024

    monkeypatch.setenv("LEAKMAP_IMPORT_MAX_UNCOMPRESSED_MB", "1")
    lines = import_fails("leads", path)
    assert lines == [
        f"{path}: unpacks to {unpacked / 1024 / 1024:,.0f} MB, more than the limit of 1 MB "
        "(LEAKMAP_IMPORT_MAX_UNCOMPRESSED_MB); save it as CSV, or raise the limit"
    ]
    assert Lead.objects.count() == 0

    monkeypatch.setenv("LEAKMAP_IMPORT_MAX_UNCOMPRESSED_MB", "2")
    out, _ = run_import("leads", path)
    assert out.startswith("leads: 5000 rows, 5000 created")


def test_it_refuses_an_archive_of_too_many_parts(tmp_path, rep):
    path = tmp_path / "parts.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(1001):
            zf.writestr(f"part{i}.xml", "<x/>")
    assert import_fails("leads", path) == [
        f"{path}: the archive holds 1001 parts, more than the 1000 an .xlsx may have"
    ]


def test_it_reports_a_sheet_damaged_midway_as_a_bad_file(tmp_path, rep):
    path = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "[Content_Types].xml", re.sub(r"<Override[^>]*sharedStrings[^>]*>", "", CONTENT_TYPES)
        )
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", WORKBOOK)
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            re.sub(r"<Relationship Id=\"rId2\"[^>]*>", "", WORKBOOK_RELS),
        )
        zf.writestr(
            "xl/worksheets/sheet1.xml",
            # With its dimension at the top, openpyxl reads no further before the rows.
            SHEET_HEAD.replace("<sheetData>", '<dimension ref="A1:C6000"/><sheetData>')
            + '<row r="1"><c r="A1" t="inlineStr"><is><t>external_id</t></is></c>'
            '<c r="B1" t="inlineStr"><is><t>name</t></is></c>'
            '<c r="C1" t="inlineStr"><is><t>created_at</t></is></c></row>'
            + "".join(
                f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>L{n}</t></is></c>'
                f'<c r="B{n}" t="inlineStr"><is><t>x</t></is></c>'
                f'<c r="C{n}" t="inlineStr"><is><t>2026-01-05</t></is></c></row>'
                for n in range(2, 6000)
            )
            + '<row r="6000"><c r="A6000" t="inlineStr"><is><t>L&#0;</t></is></c></row>'
            + SHEET_TAIL,
        )
    lines = import_fails("leads", path)
    # The parser reads ahead, so the row it names is near the damage, not exactly on it.
    assert re.match(rf"{re.escape(str(path))}:\d{{4}}: not a readable .xlsx file", lines[0]), lines
    assert Lead.objects.count() == 0


# --- cells ---------------------------------------------------------------------------------------


@pytest.fixture
def deal(rep):
    return make_deal(owner=rep, external_id="D-OLD", stage_key="needs_analysis")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_it_refuses_a_cell_longer_than_the_limit(tmp_path, deal, suffix):
    head = ["external_id", "deal_external_id", "kind", "done_at", "notes"]
    rows = [
        head,
        ["A1", "D-OLD", "call", "2026-01-08", "n" * MAX_CELL_CHARS],
        ["A2", "D-OLD", "call", "2026-01-08", "n" * (MAX_CELL_CHARS + 1)],
    ]
    if suffix == ".csv":
        path = write(tmp_path / "a.csv", "".join(",".join(r) + "\n" for r in rows))
    else:
        path = write_leads_xlsx(tmp_path / "a.xlsx", rows)
    before = db_counts()
    lines = import_fails("activities", path)
    assert lines == [
        f"{path}:3: column notes: value '{'n' * 60}…': longer than 10000 characters, "
        "the longest cell an import reads",
        f"1 bad row(s) in {path}; nothing was imported",
    ]
    assert db_counts() == before

    rows.pop()
    path.unlink()
    if suffix == ".csv":
        write(path, "".join(",".join(r) + "\n" for r in rows))
    else:
        write_leads_xlsx(path, rows)
    run_import("activities", path)
    assert len(Activity.objects.get(external_id="A1").notes) == MAX_CELL_CHARS


def test_it_refuses_a_long_cell_in_a_column_without_a_header(tmp_path, rep):
    path = write(tmp_path / "l.csv", LEADS_HEAD + "L1,x,2026-01-05," + "z" * 20_000 + "\n")
    lines = import_fails("leads", path)
    assert lines[0].startswith(f"{path}:2: column #4: value 'zzz")
    assert Lead.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "text", "column"),
    [
        ("leads", LEADS_HEAD + "L1,a\x00b,2026-01-05\n", "name"),
        ("leads", "external_id,name,created_at,company\nL1,a,2026-01-05,\x00\n", "company"),
        ("leads", LEADS_HEAD + "L\x001,a,2026-01-05\n", "external_id"),
        (
            "activities",
            "external_id,deal_external_id,kind,done_at,notes\nA1,D-OLD,call,2026-01-08,x\x00\n",
            "notes",
        ),
        ("spend", "source,month,amount\n百\x00度,2026-01,5\n", "source"),
    ],
)
def test_it_refuses_a_nul_character_on_every_database(tmp_path, deal, kind, text, column):
    path = write(tmp_path / f"{kind}.csv", text)
    before = db_counts()
    lines = import_fails(kind, path)
    assert lines[0].startswith(f"{path}:2: column {column}: value ")
    assert lines[0].endswith(": contains the character U+0000, which cannot be stored")
    assert db_counts() == before


def test_it_never_reads_a_lone_surrogate_from_a_file(tmp_path, rep):
    """cells_ok looks for NUL only, because the readers refuse an encoded surrogate (here
    U+D800 as UTF-8 would write it) as text in no encoding they read."""
    path = tmp_path / "l.csv"
    path.write_bytes(LEADS_HEAD.encode() + b"L1,a\xed\xa0\x80b,2026-01-05\n")
    (line,) = import_fails("leads", path)
    assert line.startswith(f"{path}:") and "'gb18030' codec can't decode" in line
    assert Lead.objects.count() == 0


def test_it_checks_every_row_and_lists_each_bad_cell(tmp_path, rep):
    path = write(
        tmp_path / "l.csv",
        LEADS_HEAD + "L1,a\x00,2026-01-05\nL2,ok,0001-01-01\nL3,fine,2026-01-05\n",
    )
    lines = import_fails("leads", path)
    assert [line.split(": value")[0] for line in lines[:-1]] == [
        f"{path}:2: column name",
        f"{path}:3: column created_at",
    ]
    assert lines[-1] == f"2 bad row(s) in {path}; nothing was imported"
    assert Lead.objects.count() == 0


# --- times ---------------------------------------------------------------------------------------


@pytest.fixture
def existing(rep):
    LeadFactory(external_id="L-OLD", owner=rep, created_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    return make_deal(owner=rep, external_id="D-OLD", stage_key="needs_analysis")


def _tomorrow() -> str:
    return (timezone.localdate() + dt.timedelta(days=1)).isoformat()


# (kind, header, a row with {t} where the time goes, column)
HAPPENED = [
    ("leads", LEADS_HEAD, "L1,x,{t}", "created_at"),
    (
        "deals",
        "external_id,name,stage,owner,created_at\n",
        "D1,x,qualification,alice,{t}",
        "created_at",
    ),
    (
        "deals",
        "external_id,name,stage,owner,created_at,closed_at,lost_reason\n",
        "D1,x,lost,alice,2000-01-01,{t},失去联系",
        "closed_at",
    ),
    (
        "stage-history",
        "deal_external_id,stage,entered_at\n",
        "D-OLD,needs_analysis,{t}",
        "entered_at",
    ),
    (
        "activities",
        "external_id,deal_external_id,kind,done_at\n",
        "A1,D-OLD,call,{t}",
        "done_at",
    ),
]


@pytest.mark.parametrize(("kind", "head", "row", "column"), HAPPENED)
@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("future", "which is now: the time something happened cannot lie ahead"),
        ("2099-01-01", "which is now: the time something happened cannot lie ahead"),
        (
            "1999-12-31T23:59",
            "before 2000-01-01, the earliest time accepted for something that happened",
        ),
        ("0001-01-01", "before 2000-01-01, the earliest time accepted for something that happened"),
    ],
)
def test_it_bounds_the_times_of_things_that_happened_for_every_kind(
    tmp_path, existing, kind, head, row, column, when, message
):
    value = _tomorrow() if when == "future" else when
    path = write(tmp_path / f"{kind}.csv", head + row.format(t=value) + "\n")
    before = db_counts()
    lines = import_fails(kind, path)
    expected = f"{path}:2: column {column}: value '{value}': "
    assert any(line.startswith(expected) and line.endswith(message) for line in lines), lines
    assert db_counts() == before


def test_it_reads_the_earliest_day_in_the_install_time_zone(tmp_path, rep):
    path = write(
        tmp_path / "l.csv",
        LEADS_HEAD + "L1,x,2000-01-01\nL2,y,1999-12-31T16:00:00Z\nL3,z,1999-12-31T15:59:59Z\n",
    )
    lines = import_fails("leads", path)
    assert [line.split(": value")[0] for line in lines[:-1]] == [f"{path}:4: column created_at"]
    path.write_text(LEADS_HEAD + "L1,x,2000-01-01\nL2,y,1999-12-31T16:00:00Z\n")
    run_import("leads", path)
    assert Lead.objects.count() == 2


def test_it_accepts_plans_in_the_future_but_not_out_of_range(tmp_path, existing):
    deals = write(
        tmp_path / "deals.csv",
        "external_id,name,stage,owner,created_at,expected_close_date,next_follow_up\n"
        "D1,x,qualification,alice,2026-01-05,2099-06-30,2099-07-01T10:00\n",
    )
    run_import("deals", deals)
    assert Deal.objects.get(external_id="D1").expected_close_date == dt.date(2099, 6, 30)
    tasks = write(
        tmp_path / "a.csv",
        f"external_id,deal_external_id,kind,due_at\nA1,D-OLD,task,{_tomorrow()}T09:00\n",
    )
    run_import("activities", tasks)
    assert Activity.objects.get(external_id="A1").done_at is None

    before = db_counts()
    bad = write(
        tmp_path / "bad.csv",
        "external_id,name,stage,owner,created_at,expected_close_date,next_follow_up\n"
        "D2,x,qualification,alice,2026-01-05,0001-01-01,\n"
        "D3,x,qualification,alice,2026-01-05,,9999-12-31T23:00-05:00\n",
    )
    assert import_fails("deals", bad)[:2] == [
        f"{bad}:2: column expected_close_date: value '0001-01-01': out of range; use a date "
        "between 2000-01-01 and 2999-12-31",
        f"{bad}:3: column next_follow_up: value '9999-12-31T23:00-05:00': out of range; use a "
        "date between 2000-01-01 and 2999-12-31",
    ]
    due = write(
        tmp_path / "due.csv", "external_id,deal_external_id,kind,due_at\nA2,D-OLD,task,0001-01-01\n"
    )
    assert import_fails("activities", due)[0].startswith(
        f"{due}:2: column due_at: value '0001-01-01': out of range"
    )
    assert db_counts() == before


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("0000-01", "not a month; use YYYY-MM such as 2026-03"),
        ("1999-12", "out of range; use a date between 2000-01-01 and 2999-12-31"),
    ],
)
def test_it_refuses_a_spend_month_no_database_keeps(tmp_path, rep, month, message):
    path = write(tmp_path / "s.csv", f"source,month,amount\n百度广告,{month},5\n")
    assert import_fails("spend", path)[0] == f"{path}:2: column month: value '{month}': {message}"
    assert Spend.objects.count() == 0


# --- generated data ------------------------------------------------------------------------------


def test_it_generates_nothing_that_happened_after_now(tmp_path):
    now = dt.datetime(2026, 6, 30, 11, 30, 45)
    generate(tmp_path, leads=400, seed=2, until=now.date(), now=now)
    happened = {
        "leads": ["created_at"],
        "deals": ["created_at", "closed_at"],
        "stage-history": ["entered_at"],
        "activities": ["done_at"],
    }
    import csv

    latest = ""
    for kind, columns in happened.items():
        with open(tmp_path / FILE_NAMES[kind], encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                latest = max([latest, *(row[c] for c in columns)])
    assert "2026-06-30" <= latest <= "2026-06-30T11:30"
    with open(tmp_path / FILE_NAMES["activities"], encoding="utf-8") as fh:
        assert max(r["due_at"] for r in csv.DictReader(fh)) > "2026-06-30T11:30"  # plans ahead


def test_it_imports_data_generated_up_to_this_minute(tmp_path):
    generate(tmp_path, leads=300, seed=4, until=timezone.localdate(), now=_local_now())
    for kind in IMPORT_ORDER:
        run_import(kind, tmp_path / FILE_NAMES[kind])
    assert Lead.objects.count() == 300
    assert StageChange.objects.exists()


def _local_now() -> dt.datetime:
    return timezone.localtime().replace(tzinfo=None)
