"""The lead and deal lists' downloads: every row the list would show for the same filters (all
pages), nothing the user may not see, in the import columns so the file imports again."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from openpyxl import load_workbook

from leakmap.crm.models import Deal, Lead, LeadStatus
from leakmap.exchange.columns import KINDS
from leakmap.web.views import common
from tests.factories import LeadFactory, make_deal


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # so Excel reads the Chinese as UTF-8
    reader = csv.DictReader(io.StringIO(text[1:]))
    rows = list(reader)
    assert reader.fieldnames == KINDS[response.kind]
    return rows


def _get(client, name: str, fmt: str, kind: str, params=None):
    response = client.get(reverse(name, args=[fmt]), params or {})
    response.kind = kind
    return response


@pytest.fixture
def leads(rep, teammate, outsider, source):
    LeadFactory(owner=rep, source=source, name="张伟", external_id="L-1")
    LeadFactory(
        owner=rep, source=source, name="王芳", external_id="L-2", status=LeadStatus.CONTACTED
    )
    LeadFactory(owner=teammate, source=source, name="李强", external_id="L-3")
    LeadFactory(owner=outsider, source=source, name="赵敏", external_id="L-4")


def test_a_rep_downloads_only_their_own_leads_whatever_the_filters_say(login, leads, rep):
    client = login(rep)
    rows = _csv(_get(client, "lead_export", "csv", "leads"))
    assert sorted(r["name"] for r in rows) == ["张伟", "王芳"]
    assert {r["owner"] for r in rows} == {"alice"}
    # Naming someone else's leads in the query string does not widen the set.
    rows = _csv(_get(client, "lead_export", "csv", "leads", {"owner": "mallory"}))
    assert sorted(r["name"] for r in rows) == ["张伟", "王芳"]


def test_the_download_applies_the_list_filters_to_every_page(login, leads, rep, manager):
    rows = _csv(_get(login(rep), "lead_export", "csv", "leads", {"status": "contacted"}))
    assert [r["name"] for r in rows] == ["王芳"]
    LeadFactory.create_batch(60, owner=rep, name="批量")  # more than one list page (50)
    rows = _csv(_get(login(manager), "lead_export", "csv", "leads", {"page": "2"}))
    assert len(rows) == 63  # the page number is not a filter: every page of the team's leads
    assert "赵敏" not in {r["name"] for r in rows}


def test_a_manager_downloads_the_team_deals_and_an_admin_everyone(
    login, rep, teammate, outsider, manager, admin_user
):
    make_deal(owner=rep, name="云帆 ERP", amount=120000, external_id="D-1")
    make_deal(owner=teammate, name="东方 MES", amount=80000, external_id="D-2")
    make_deal(owner=outsider, name="华南 CRM", amount=50000, external_id="D-3")
    rows = _csv(_get(login(manager), "deal_export", "csv", "deals"))
    assert sorted(r["name"] for r in rows) == ["东方 MES", "云帆 ERP"]
    assert {r["name"]: r["amount"] for r in rows}["云帆 ERP"] == "120000.00"
    rows = _csv(_get(login(admin_user), "deal_export", "csv", "deals", {"q": "CRM"}))
    assert [r["name"] for r in rows] == ["华南 CRM"]


def test_a_downloaded_file_imports_again_unchanged(login, leads, rep, tmp_path):
    response = _get(login(rep), "lead_export", "csv", "leads")
    path = tmp_path / "leads.csv"
    path.write_bytes(b"".join(response.streaming_content))
    before = list(Lead.objects.order_by("external_id").values_list("external_id", "name", "status"))
    out = io.StringIO()
    call_command("import_data", "leads", str(path), stdout=out)
    assert "0" in out.getvalue()  # nothing created: the rows are the same leads
    assert Lead.objects.count() == 4
    assert (
        list(Lead.objects.order_by("external_id").values_list("external_id", "name", "status"))
        == before
    )


def test_xlsx_has_the_same_rows_and_refuses_a_list_too_long_for_it(login, rep, monkeypatch):
    for i in range(3):
        make_deal(owner=rep, name=f"单 {i}", amount=1000 + i, external_id=f"D-{i}")
    client = login(rep)
    response = _get(client, "deal_export", "xlsx", "deals")
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == KINDS["deals"]
    assert sorted(v[values[0].index("name")] for v in values[1:]) == ["单 0", "单 1", "单 2"]

    monkeypatch.setattr(common, "XLSX_MAX_ROWS", 2)
    refused = _get(client, "deal_export", "xlsx", "deals")
    assert refused.status_code == 400
    assert "3" in refused.content.decode() and "CSV" in refused.content.decode()
    assert Deal.objects.count() == 3


def test_unknown_formats_and_anonymous_users_get_nothing(client, login, leads, rep):
    assert client.get(reverse("lead_export", args=["csv"])).status_code == 302  # to the login
    assert login(rep).get(reverse("lead_export", args=["pdf"])).status_code == 404


def test_xlsx_keeps_typed_text_as_text_and_drops_what_xlsx_cannot_hold(login, rep, source):
    LeadFactory(owner=rep, source=source, name='=HYPERLINK("http://evil","Open")', external_id="X1")
    LeadFactory(owner=rep, source=source, name="Bob\x01Smith", external_id="X2")
    response = _get(login(rep), "lead_export", "xlsx", "leads")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = [[c for c in row] for row in sheet.iter_rows()]
    names = {r[0].value: r[1] for r in rows[1:]}  # external_id → name cell
    assert names["X1"].value == '\'=HYPERLINK("http://evil","Open")'  # as in the CSV
    assert names["X1"].data_type == "s"  # text, not a formula
    assert names["X2"].value == "BobSmith"


# Text a spreadsheet would run as a formula (CSV injection, OWASP) and what the downloads make
# of it: the same text with one "'" in front, in CSV and in XLSX.
FORMULAS = {
    "F1": ('=HYPERLINK("http://evil","x")', "=1+2"),
    "F2": ("+86 138 0013 8000", "+cmd|' /C calc'!A0"),
    "F3": ("-2+3", "-公司"),
    "F4": ("@SUM(1,2)", "@evil"),
    "F5": ("\t=1", "\r=2"),
}


@pytest.fixture
def formula_leads(rep, source):
    for ext, (name, company) in FORMULAS.items():
        LeadFactory(
            owner=rep, source=source, name=name, company=company, external_id=ext, budget=None
        )
    LeadFactory(
        owner=rep,
        source=source,
        name="负预算",
        company="普通公司",
        external_id="N1",
        budget=Decimal("-5"),
    )


def test_it_escapes_text_that_would_run_as_a_formula_in_the_csv(login, rep, formula_leads):
    rows = {r["external_id"]: r for r in _csv(_get(login(rep), "lead_export", "csv", "leads"))}
    for ext, (name, company) in FORMULAS.items():
        assert (rows[ext]["name"], rows[ext]["company"]) == ("'" + name, "'" + company)
    # Numbers are never touched: a negative budget stays the number, and plain text stays.
    assert (rows["N1"]["name"], rows["N1"]["budget"]) == ("负预算", "-5.00")
    assert rows["F1"]["owner"] == "alice"


def test_it_stores_escaped_text_as_text_not_a_formula_in_the_xlsx(login, rep, formula_leads):
    response = _get(login(rep), "lead_export", "xlsx", "leads")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    cells = {r[0].value: dict(zip(header, r, strict=True)) for r in rows[1:]}
    for ext, (name, company) in FORMULAS.items():
        for cell, text in ((cells[ext]["name"], name), (cells[ext]["company"], company)):
            # (An .xlsx is XML, which gives a stored carriage return back as a line feed.)
            assert cell.value == ("'" + text).replace("\r", "\n")
            assert cell.data_type == "s"  # a string cell, not a formula ("f")
    assert cells["N1"]["budget"].value == "-5.00"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_escaped_download_imports_back_to_the_original_text(
    login, rep, formula_leads, tmp_path, fmt
):
    Lead.objects.filter(external_id="N1").delete()  # an import refuses a negative budget
    response = _get(login(rep), "lead_export", fmt, "leads")
    content = b"".join(response.streaming_content) if fmt == "csv" else response.content
    path = tmp_path / f"leads.{fmt}"
    path.write_bytes(content)
    columns = ("external_id", "name", "company", "budget")
    # F5 starts with a tab and a carriage return: an import strips blanks around every cell, so
    # that text never came back whole, escaped or not.
    kept = Lead.objects.exclude(external_id="F5").order_by("external_id")
    before = list(kept.values_list(*columns))
    Lead.objects.all().delete()  # so the import creates every lead from the file alone

    call_command("import_data", "leads", str(path), stdout=io.StringIO())

    after = list(
        Lead.objects.exclude(external_id="F5").order_by("external_id").values_list(*columns)
    )
    assert after == before
    names = dict(Lead.objects.values_list("external_id", "name"))
    assert names["F1"] == '=HYPERLINK("http://evil","x")' and names["F3"] == "-2+3"
    assert Lead.objects.count() == len(FORMULAS)


def test_it_escapes_deal_names_in_both_deal_downloads_and_leaves_amounts_alone(login, rep):
    make_deal(owner=rep, name="=1+1", amount=Decimal("1234.50"), external_id="D-F")
    client = login(rep)
    (row,) = _csv(_get(client, "deal_export", "csv", "deals"))
    assert (row["name"], row["amount"], row["owner"]) == ("'=1+1", "1234.50", "alice")
    sheet = load_workbook(io.BytesIO(_get(client, "deal_export", "xlsx", "deals").content)).active
    header, cells = list(sheet.iter_rows())
    name = cells[[c.value for c in header].index("name")]
    assert (name.value, name.data_type) == ("'=1+1", "s")
