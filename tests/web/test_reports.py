"""Report pages: the figures come from analytics with the viewer's visibility, filters that name
someone the user may not see are 404s, and the downloads hold exactly the rows shown."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from leakmap.analytics import ReportFilters, run_report
from leakmap.analytics.render import render_csv
from leakmap.crm import services
from leakmap.crm.models import LostReason
from tests.factories import (
    T0,
    CompetitorFactory,
    LeadFactory,
    SourceFactory,
    days,
    lost_reason,
    make_deal,
    stage,
)
from tests.web.report_text import codes_in, page_text

PAGES = ["funnel", "owners", "sources", "lost-reasons", "stage-time", "stuck", "cycle", "forecast"]


@pytest.fixture
def company(rep, teammate, outsider):
    """Alice wins one and loses one, Bob loses one to a competitor, Mallory (another team) wins
    a big one that nobody in Alice's team may see."""
    web = SourceFactory(name="官网")
    fair = SourceFactory(name="展会")
    won = make_deal(owner=rep, amount=30000, source=web, name="A-赢")
    services.deal_move(deal=won, stage=stage("proposal"), at=T0 + days(2))
    services.deal_close_won(deal=won, at=T0 + days(10))
    lost = make_deal(owner=rep, amount=20000, source=fair, name="A-输")
    services.deal_close_lost(deal=lost, lost_reason=lost_reason(), at=T0 + days(5))
    rival = make_deal(owner=teammate, amount=50000, source=web, name="B-输")
    services.deal_move(deal=rival, stage=stage("negotiation"), at=T0 + days(3))
    services.deal_close_lost(
        deal=rival,
        lost_reason=lost_reason("被竞争对手拿下"),
        competitor=CompetitorFactory(name="销售易"),
        at=T0 + days(8),
    )
    big = make_deal(owner=outsider, amount=900000, source=web, name="M-赢")
    services.deal_close_won(deal=big, at=T0 + days(4))
    LeadFactory(owner=rep, source=web)
    return {"web": web, "fair": fair}


def test_it_opens_every_report_page_for_every_role(login, company, rep, manager, admin_user):
    for user in (rep, manager, admin_user):
        client = login(user)
        for name in PAGES:
            assert client.get(reverse("report", args=[name])).status_code == 200, name
        assert client.get(reverse("weekly")).status_code == 200
        assert client.get(reverse("diagnosis")).status_code == 200
    assert login(rep).get("/reports/nonsense/").status_code == 404


def test_it_shows_a_rep_only_their_own_deals_in_the_reports(login, company, rep):
    response = login(rep).get(reverse("report", args=["lost-reasons"]))
    rows = response.context["body"]["rows"]
    assert [(r["reason"], r["deals"], r["amount"]) for r in rows] == [("价格过高", 1, 20000.0)]
    funnel = login(rep).get(reverse("report", args=["funnel"])).context["body"]["rows"]
    counts = {r["step"]: (r["count"], r["amount"]) for r in funnel}
    assert counts["deals"] == (2, 50000.0)
    assert counts["won"] == (1, 30000.0)


def test_it_shows_a_manager_the_team_but_not_the_outsider(login, company, manager):
    body = login(manager).get(reverse("report", args=["owners"])).context["body"]
    assert sorted((r["owner"], r["deals"], r["won"], r["lost"]) for r in body["rows"]) == [
        ("alice", 2, 1, 1),
        ("bob", 1, 0, 1),
    ]
    html = login(manager).get(reverse("report", args=["lost-reasons"])).content.decode()
    assert "销售易" in html


@pytest.mark.parametrize(
    "param,value",
    [("owner", "bob"), ("owner", "mallory"), ("owner", "nobody"), ("team", "华南组")],
)
def test_it_answers_404_to_a_filter_naming_someone_the_rep_may_not_see(
    login, company, rep, param, value
):
    client = login(rep)
    assert client.get(reverse("report", args=["funnel"]), {param: value}).status_code == 404
    export = reverse("report_export", args=["owners", "csv"])
    assert client.get(export, {param: value}).status_code == 404
    assert client.get(reverse("diagnosis"), {param: value}).status_code == 404


def test_it_lets_a_manager_filter_by_a_team_member_but_not_an_outsider(login, company, manager):
    client = login(manager)
    body = client.get(reverse("report", args=["owners"]), {"owner": "bob"}).context["body"]
    assert [(r["owner"], r["deals"]) for r in body["rows"]] == [("bob", 1)]
    assert client.get(reverse("report", args=["owners"]), {"owner": "mallory"}).status_code == 404


def test_its_owner_filter_lists_only_visible_people_escaped_with_the_chosen_one_selected(
    login, company, manager, teammate
):
    teammate.display_name = "<b>鲍勃</b>"
    teammate.save()
    html = login(manager).get(reverse("report", args=["owners"]), {"owner": "bob"}).content
    html = html.decode()
    assert '<option value="bob" selected>&lt;b&gt;鲍勃&lt;/b&gt;</option>' in html
    assert 'value="alice"' in html and 'value="mallory"' not in html  # the outsider


def test_its_tables_format_each_cell_by_kind_and_escape_names(login, company, rep, manager):
    rep.display_name = "<i>艾丽丝</i>"
    rep.save()
    LostReason.objects.filter(name="价格过高").update(name="价格<过高>")
    html = login(manager).get(reverse("report", args=["owners"])).content.decode()
    assert "<td>&lt;i&gt;艾丽丝&lt;/i&gt;</td>" in html and "<i>艾丽丝" not in html
    assert '<td class="num">¥30,000.00</td>' in html  # alice's won amount, in money
    assert '<td class="num">50.0%</td>' in html  # alice's win rate: one of two closed
    html = login(manager).get(reverse("report", args=["lost-reasons"])).content.decode()
    assert "<td>价格&lt;过高&gt;</td>" in html


def test_it_explains_a_backwards_period(login, company, rep):
    response = login(rep).get(
        reverse("report", args=["funnel"]), {"date_from": "2026-03-01", "date_to": "2026-01-01"}
    )
    assert response.status_code == 400
    assert "2026-03-01" in response.content.decode()


def test_it_downloads_exactly_the_rows_shown_as_csv_and_xlsx(login, company, manager):
    client = login(manager)
    params = {"source": "官网", "date_from": "2026-01-01", "date_to": "2026-01-31"}
    page = client.get(reverse("report", args=["sources"]), params).context["body"]
    expected = render_csv(
        run_report(
            "sources",
            ReportFilters(
                date_from=T0.date().replace(day=1),
                date_to=T0.date().replace(day=31),
                source="官网",
                viewer=manager,
            ),
        )
    )
    response = client.get(reverse("report_export", args=["sources", "csv"]), params)
    assert response["Content-Disposition"] == 'attachment; filename="leakmap-sources.csv"'
    text = response.content.decode("utf-8-sig")
    assert text == expected
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["source"], r["deals"], r["won"]) for r in rows] == [
        (p["source"], str(p["deals"]), str(p["won"])) for p in page["rows"]
    ]
    assert [(r["source"], r["leads"]) for r in rows] == [("官网", "1")]

    xlsx = client.get(reverse("report_export", args=["sources", "xlsx"]), params)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header = next(csv.reader(io.StringIO(expected)))
    assert values[0] == header
    assert values[1][header.index("source")] == "官网"
    assert values[1][header.index("leads")] == 1
    assert len(values) == len(rows) + 1


def test_it_cuts_a_long_report_for_the_page_but_not_for_the_download(
    login, company, admin_user, monkeypatch
):
    from leakmap.web.views import reports

    # Every open deal of the company may be stuck; the page shows the longest-stuck first.
    for i in range(3):
        make_deal(owner=admin_user, name=f"久拖-{i}", created_at=T0 - days(30 + i))
    monkeypatch.setattr(reports, "PAGE_ROWS", 2)
    client = login(admin_user)
    page = client.get(reverse("report", args=["stuck"]))
    assert (page.context["shown_rows"], page.context["all_rows"]) == (2, 3)
    assert [r["deal"] for r in page.context["body"]["rows"]] == ["久拖-2", "久拖-1"]
    assert len(page.context["table"]["rows"]) == 2
    assert 'id="rows-cut"' in page.content.decode()
    download = client.get(reverse("report_export", args=["stuck", "csv"]))
    names = [r["deal"] for r in csv.DictReader(io.StringIO(download.content.decode("utf-8-sig")))]
    assert names == ["久拖-2", "久拖-1", "久拖-0"]


def test_it_lays_out_the_weekly_review_and_the_diagnosis(login, company, manager):
    client = login(manager)
    weekly = client.get(reverse("weekly"))
    assert weekly.status_code == 200
    assert "data-print" in weekly.content.decode()
    diagnosis = client.get(reverse("diagnosis"))
    stakes = [item["f"].revenue_at_stake for item in diagnosis.context["findings"]]
    assert stakes == sorted(stakes, reverse=True)
    # The headline is the biggest single leak (findings overlap, so no sum), or none at all.
    assert diagnosis.context["revenue_at_stake"] == (stakes[0] if stakes else None)
    assert diagnosis.context["won_amount"] == Decimal("30000.00")
    for name in ("weekly", "diagnosis"):
        for fmt in ("csv", "xlsx"):
            assert client.get(reverse("report_export", args=[name, fmt])).status_code == 200


def test_it_escapes_names_that_would_run_as_formulas_in_both_report_downloads(login, rep):
    reason = LostReason.objects.create(name="=1+1", requires_competitor=True)
    deal = make_deal(owner=rep, amount=20000, name="A-输")
    services.deal_close_lost(
        deal=deal,
        lost_reason=reason,
        competitor=CompetitorFactory(name="@rival"),
        at=T0 + days(5),
    )
    client = login(rep)
    csv_response = client.get(reverse("report_export", args=["lost-reasons", "csv"]))
    (row,) = csv.DictReader(io.StringIO(csv_response.content.decode("utf-8-sig")))
    assert (row["reason"], row["deals"], row["amount"]) == ("'=1+1", "1", "20000.0")

    xlsx = client.get(reverse("report_export", args=["lost-reasons", "xlsx"]))
    book = load_workbook(io.BytesIO(xlsx.content))
    header, cells = list(book.worksheets[0].iter_rows())
    by_key = {h.value: c for h, c in zip(header, cells, strict=True)}
    assert (by_key["reason"].value, by_key["reason"].data_type) == ("'=1+1", "s")
    assert by_key["amount"].value == 20000  # a number stays a number
    competitors = book["by_competitor"]
    keys = [c.value for c in next(competitors.iter_rows())]
    rival = list(competitors.iter_rows())[1][keys.index("key")]
    assert (rival.value, rival.data_type) == ("'@rival", "s")


def test_a_big_scopes_diagnosis_shows_the_chosen_reps_coaching_sheet_and_a_picker(
    login, admin_user, team
):
    """Fourteen reps: more sheets than a page should lay out. The page offers every rep in a
    picker and shows the one picked (first), within the cap; the report itself keeps them all."""
    from leakmap.web.views.reports import COACHING_SHEETS_SHOWN
    from tests.factories import UserFactory

    reps = [UserFactory(username=f"r{i:02}", role="rep", team=team) for i in range(14)]
    for r in reps:
        make_deal(owner=r, amount=1000)
    client = login(admin_user)
    page = client.get(reverse("diagnosis"))
    html = page.content.decode()
    assert len(page.context["coaching"]) <= COACHING_SHEETS_SHOWN < 14
    assert page.context["coaching_total"] == 14
    assert all(f'<option value="{r.username}"' in html for r in reps)

    picked = client.get(reverse("diagnosis"), {"coach": "r07"})
    assert picked.context["coaching"][0]["sheet"].owner == "r07"
    assert 'value="r07" selected' in picked.content.decode()

    assert len(run_report("diagnosis", ReportFilters()).extra["coaching"]) == 14


# --- Filters: named periods, the as-of date, the week; labels instead of codes ----------------


def _body(client, name, **params):
    response = client.get(reverse("report", args=[name]), params)
    assert response.status_code == 200, response.content.decode()[-600:]
    return response


@pytest.mark.parametrize(
    "preset, as_of, period",
    [
        ("this_month", "2026-01-31", ("2026-01-01", "2026-01-31")),
        ("last_month", "2026-02-10", ("2026-01-01", "2026-01-31")),
        ("this_quarter", "2026-02-10", ("2026-01-01", "2026-03-31")),
        ("last_quarter", "2026-04-02", ("2026-01-01", "2026-03-31")),
        ("year_to_date", "2026-01-07", ("2026-01-01", "2026-01-07")),
    ],
)
def test_it_works_out_a_named_period_from_the_as_of_date(
    login, company, manager, preset, as_of, period
):
    response = _body(login(manager), "funnel", preset=preset, as_of=as_of)
    body = response.context["body"]
    assert (body["period"]["from"], body["period"]["to"]) == period
    # The as-of date is the end of that day in the reporting time zone.
    assert body["as_of"].startswith(f"{as_of}T23:59:59.999999+08:00")
    html = response.content.decode()
    # The date fields show the days the period covers, the period stays chosen.
    assert f'name="date_from" value="{period[0]}"' in html
    assert f'<option value="{preset}" selected>' in html


def test_it_counts_only_what_had_happened_by_the_as_of_date(login, company, manager):
    client = login(manager)
    # Jan 7 local is before alice's win on day 10 and bob's loss on day 8.
    early = {
        r["step"]: r["count"]
        for r in _body(client, "funnel", as_of="2026-01-07").context["body"]["rows"]
    }
    late = {
        r["step"]: r["count"]
        for r in _body(client, "funnel", as_of="2026-01-31").context["body"]["rows"]
    }
    assert (early["won"], late["won"]) == (0, 1)


def test_it_marks_typed_dates_as_a_custom_period(login, company, manager):
    html = _body(login(manager), "funnel", date_from="2026-01-01", date_to="2026-01-31")
    assert '<option value="custom" selected>' in html.content.decode()


@pytest.mark.parametrize(
    "lang, words", [("zh-hans", ("结束日期", "开始日期")), ("en", ("end date", "start date"))]
)
def test_it_names_the_fields_of_a_backwards_period_not_the_cli_options(
    login, company, rep, lang, words
):
    response = login(rep).get(
        reverse("report", args=["funnel"]),
        {"date_from": "2026-03-01", "date_to": "2026-01-01"},
        HTTP_ACCEPT_LANGUAGE=lang,
    )
    assert response.status_code == 400
    text = page_text(response.content.decode())
    assert all(w in text for w in words) and "2026-03-01" in text
    assert "--from" not in text and "--to" not in text


def test_it_refuses_an_as_of_date_in_the_future_and_a_week_that_is_not_one(login, company, rep):
    client = login(rep)
    response = client.get(reverse("report", args=["funnel"]), {"as_of": "2999-01-01"})
    assert response.status_code == 400 and "2999-01-01" in response.content.decode()
    response = client.get(reverse("weekly"), {"week": "2026-53x"})
    assert response.status_code == 400 and "2026-W05" in response.content.decode()
    response = client.get(reverse("weekly"), {"week": "2999-W01"})
    assert response.status_code == 400 and "2998-12-31" in response.content.decode()


def test_its_weekly_review_defaults_to_the_last_complete_week_with_a_picker(
    login, company, manager
):
    client = login(manager)
    response = client.get(reverse("weekly"), {"as_of": "2026-01-14"})
    assert response.status_code == 200
    # Wednesday Jan 14: the last complete week is the one from Monday Jan 5.
    assert response.context["week_label"] == "2026-W02"
    assert response.context["body"]["period"] == {"from": "2026-01-05", "to": "2026-01-11"}
    html = response.content.decode()
    assert 'type="week" name="week" value="2026-W02"' in html
    assert "week=2026-W01" in response.context["week_prev"]
    assert "week=2026-W03" in response.context["week_next"]
    assert "as_of=2026-01-14" in response.context["week_next"]  # the other filters stay
    rows = {r["metric"]: r for r in response.context["body"]["rows"]}
    assert (rows["deals_created"]["this_week"], rows["deals_created"]["last_week"]) == (3, 0)
    # The running week: compared over the same days of the weeks before, and said so.
    running = client.get(reverse("weekly"), {"as_of": "2026-01-14", "week": "2026-W03"})
    assert running.context["week_next"] is None
    assert 'data-testid="week-partial"' in running.content.decode()


@pytest.mark.parametrize("lang", ["zh-hans", "en"])
def test_no_report_page_shows_an_internal_code(login, company, manager, rep, teammate, lang):
    rep.display_name, teammate.display_name = "艾丽丝", "鲍勃"
    rep.save()
    teammate.save()
    client = login(manager)
    urls = [reverse("report", args=[name]) for name in PAGES]
    urls += [reverse("weekly") + "?as_of=2026-01-14", reverse("diagnosis"), reverse("report_index")]
    for url in urls:
        response = client.get(url, HTTP_ACCEPT_LANGUAGE=lang)
        assert response.status_code == 200, url
        text = page_text(response.content.decode())
        assert codes_in(text, lang, usernames=("alice", "bob")) == [], url


def test_it_names_the_two_win_rates_apart_with_their_formula(login, company, manager):
    client = login(manager)
    owners = client.get(reverse("report", args=["owners"])).content.decode()
    sources = client.get(reverse("report", args=["sources"])).content.decode()
    assert "商机赢单率" in owners and "线索赢单率" not in owners
    assert "线索赢单率" in sources and "商机赢单率" not in sources
    assert 'title="赢单数 ÷ 期间内新建商机数"' in owners
    assert 'title="赢单数 ÷ 期间内新建线索数"' in sources
    en = client.get(reverse("report", args=["sources"]), HTTP_ACCEPT_LANGUAGE="en")
    assert "Lead win rate" in en.content.decode()


def test_it_shows_probabilities_as_percentages_and_scores_rounded(login, company, manager):
    html = login(manager).get(reverse("report", args=["forecast"])).content.decode()
    assert '<td class="num">10.0%</td>' in html  # qualification's configured probability
    scores = re.findall(r'<td class="num">(\d+\.\d+)</td>', html)
    assert scores and all(len(s.split(".")[1]) <= 3 for s in scores)


def test_its_coaching_sheet_shows_samples_and_names_the_rep_to_a_manager(
    login, company, manager, rep
):
    rep.display_name = "艾丽丝"
    rep.save()
    response = login(manager).get(reverse("diagnosis"))
    sheet = next(s for s in response.context["coaching"] if s["sheet"].owner == "alice")
    assert not sheet["is_reader"]
    steps = {s["label"]: s for s in sheet["steps"]}
    # alice: 2 deals, 1 past the proposal stage.
    assert steps["商机 → 方案"]["rep"] == "50.0% (1/2)"
    html = response.content.decode()
    assert '<th class="num">艾丽丝</th>' in html
    own = login(rep).get(reverse("diagnosis"))
    assert own.context["coaching"][0]["is_reader"]
    assert '<th class="num">你</th>' in own.content.decode()
