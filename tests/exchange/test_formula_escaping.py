"""Spreadsheet formula injection (CSV injection, OWASP): `leakmap export` writes text that Excel
would run as a formula with a `'` in front, and `leakmap import` takes exactly that `'` off, so
that an export still imports back unchanged."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from leakmap.crm.models import Lead
from leakmap.exchange.cells import escape_formula, unescape_formula
from tests.exchange.helpers import run_export, run_import, write
from tests.factories import T0, LeadFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "text",
    ["=SUM(1)", "+1", "-1", "@A1", "\t=1", "\r=1", '=HYPERLINK("http://evil","x")'],
)
def test_it_escapes_each_formula_start_and_unescapes_it_again(text):
    assert escape_formula(text) == "'" + text
    assert unescape_formula(escape_formula(text)) == text


@pytest.mark.parametrize("value", [-5, -5.5, Decimal("-5.00"), dt.date(2026, 1, 5), None, 0])
def test_it_never_touches_numbers_dates_or_none(value):
    assert escape_formula(value) is value


@pytest.mark.parametrize("text", ["张伟", "'=x", "a=b", " =x", "", "'"])
def test_it_leaves_other_text_alone_and_never_escapes_twice(text):
    assert escape_formula(text) == text


@pytest.mark.parametrize(
    "cell, imported",
    [
        ("'=SUM(1)", "=SUM(1)"),  # our escape: off
        ("''=SUM(1)", "''=SUM(1)"),  # not one "'" before a formula start: kept
        ("'abc", "'abc"),  # an apostrophe that escapes nothing is part of the text
        ("O'Brien", "O'Brien"),
        ("'", "'"),
    ],
)
def test_it_takes_off_exactly_one_quote_before_a_formula_start_on_import(
    tmp_path, rep, cell, imported
):
    path = write(
        tmp_path / "leads.csv",
        f'external_id,name,owner,created_at\nL1,"{cell}",alice,2026-01-05\n',
    )
    run_import("leads", path)
    assert Lead.objects.get(external_id="L1").name == imported


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_leakmap_export_escapes_and_import_restores_the_text(tmp_path, rep, suffix):
    LeadFactory(owner=rep, external_id="L1", name="=SUM(1)", company="@公司", title="-经理")
    LeadFactory(owner=rep, external_id="L2", name="+86 张伟", company="普通公司", title="")
    path = tmp_path / f"leads{suffix}"
    run_export("leads", path)

    if suffix == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        assert "L1,'=SUM(1),'@公司," in text and "L2,'+86 张伟,普通公司," in text
    else:
        sheet = load_workbook(path).active
        header, *rows = sheet.iter_rows()
        name = rows[0][[c.value for c in header].index("name")]
        assert (name.value, name.data_type) == ("'=SUM(1)", "s")

    columns = ("external_id", "name", "company", "title")
    before = list(Lead.objects.order_by("external_id").values_list(*columns))
    Lead.objects.all().delete()
    run_import("leads", path)
    assert list(Lead.objects.order_by("external_id").values_list(*columns)) == before
    assert Lead.objects.get(external_id="L1").name == "=SUM(1)"


def test_it_unescapes_cells_of_an_xlsx_made_by_hand_too(tmp_path, rep):
    wb = Workbook()
    ws = wb.active
    ws.append(["external_id", "name", "company", "owner", "created_at"])
    ws.append(["L1", "'=cmd", "'-  公司", "alice", T0.replace(tzinfo=None)])
    wb.save(tmp_path / "leads.xlsx")
    run_import("leads", tmp_path / "leads.xlsx")
    lead = Lead.objects.get(external_id="L1")
    assert (lead.name, lead.company) == ("=cmd", "-  公司")
