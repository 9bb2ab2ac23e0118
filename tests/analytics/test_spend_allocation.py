"""A narrowed scope's spend (CONTRACT §4): the source's spend in the period × the scope's share
of that source's leads in the period, labelled allocated; the company scope keeps the spend as
entered. Figures worked out by hand from the journeys below."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from leakmap.analytics import ReportFilters, run_report
from leakmap.analytics.diagnosis import collect, diagnose
from leakmap.analytics.filters import resolve
from leakmap.analytics.render import render_table
from leakmap.crm import services
from leakmap.crm.models import Spend
from tests.analytics.journeys import by, day, lead, report
from tests.factories import SourceFactory, UserFactory, lost_reason, make_deal

JAN = {"date_from": dt.date(2026, 1, 1), "date_to": dt.date(2026, 1, 31)}
FEB = {"date_from": dt.date(2026, 2, 1), "date_to": dt.date(2026, 2, 28)}
FEB_DAY = dt.datetime(2026, 2, 10, 2, 0, tzinfo=dt.UTC)


def leads(owner, n: int, source: str, created: dt.datetime) -> list:
    return [lead(owner=owner, created=created, source=source) for _ in range(n)]


def win(owner, of_lead, amount: int = 1000) -> None:
    deal = make_deal(owner=owner, lead=of_lead, amount=amount, created_at=day(2))
    services.deal_close_won(deal=deal, at=day(5))


@pytest.fixture
def manager_b(outsider):
    return UserFactory(username="manager_b", role="manager", team=outsider.team)


@pytest.fixture
def paid(rep, teammate, outsider, manager_b):
    """百度广告 cost 10,000 in January and 4,000 in February; 抖音 cost 3,000 in January and
    brought no lead.
    January leads of 百度广告: alice 20 + bob 10 (华东一组: 30), mallory 10 (华南组). alice wins
    2 of hers, mallory 1 (deals created on day 2, won on day 5, 1,000 each).
    February leads of 百度广告: alice 1, mallory 3."""
    baidu = SourceFactory(name="百度广告")
    douyin = SourceFactory(name="抖音")
    Spend.objects.create(source=baidu, month=dt.date(2026, 1, 1), amount=Decimal("10000"))
    Spend.objects.create(source=baidu, month=dt.date(2026, 2, 1), amount=Decimal("4000"))
    Spend.objects.create(source=douyin, month=dt.date(2026, 1, 1), amount=Decimal("3000"))
    alice = leads(rep, 20, "百度广告", day(1))
    leads(teammate, 10, "百度广告", day(1))
    mallory = leads(outsider, 10, "百度广告", day(1))
    leads(rep, 1, "百度广告", FEB_DAY)
    leads(outsider, 3, "百度广告", FEB_DAY)
    win(rep, alice[0])
    win(rep, alice[1])
    win(outsider, mallory[0])


def baidu(**filters) -> dict:
    body = report("sources", **filters).to_json()
    return {**by(body["rows"], "source")["百度广告"], "basis": body["spend_basis"]}


def test_it_keeps_the_companys_spend_as_entered(paid, admin_user):
    row = baidu(**JAN)
    assert (row["leads"], row["won"], row["basis"]) == (40, 3, "entered")
    assert (row["spend"], row["cost_per_lead"], row["cost_per_won"]) == (10000.0, 250.0, 3333.33)
    # An admin sees everything: the company scope, not a narrowed one.
    assert baidu(**JAN, viewer=admin_user) == row


def test_it_allocates_a_teams_spend_by_its_share_of_the_sources_leads(paid):
    a = baidu(**JAN, team="华东一组")
    assert (a["leads"], a["won"], a["basis"]) == (30, 2, "allocated")
    # 10,000 × 30 / 40; cost per won 7,500 / 2 (the company's 10,000 / 2 was 5,000).
    assert (a["spend"], a["cost_per_lead"], a["cost_per_won"]) == (7500.0, 250.0, 3750.0)
    b = baidu(**JAN, team="华南组")
    assert (b["leads"], b["won"], b["spend"], b["cost_per_won"]) == (10, 1, 2500.0, 2500.0)


def test_it_gives_a_managers_view_the_teams_allocation(paid, manager, manager_b):
    assert baidu(**JAN, viewer=manager) == baidu(**JAN, team="华东一组")
    assert baidu(**JAN, viewer=manager_b) == baidu(**JAN, team="华南组")


def test_it_gives_a_rep_their_own_share(paid, rep, teammate):
    mine = baidu(**JAN, viewer=rep)
    assert (mine["leads"], mine["spend"], mine["cost_per_won"]) == (20, 5000.0, 2500.0)
    assert mine == baidu(**JAN, owner="alice")
    bob = baidu(**JAN, owner="bob")
    assert (bob["spend"], bob["cost_per_lead"], bob["cost_per_won"]) == (2500.0, 250.0, None)


def test_it_takes_the_shares_of_the_period_asked_for(paid):
    # February: 4,000 × 1 / 4.
    assert (baidu(**FEB, team="华东一组")["spend"], baidu(**FEB, team="华南组")["spend"]) == (
        1000.0,
        3000.0,
    )
    # All time: 14,000 × 31 / 44 = 9,863.636… and × 13 / 44 = 4,136.363…, to the cent.
    assert baidu(team="华东一组")["spend"] == 9863.64
    assert baidu(team="华南组")["spend"] == 4136.36
    assert baidu()["spend"] == 14000.0


@pytest.mark.parametrize("period", [JAN, FEB, {}], ids=["january", "february", "all-time"])
def test_it_adds_the_teams_allocations_up_to_the_companys_spend(paid, period):
    company = baidu(**period)["spend"]
    teams = sum(Decimal(str(baidu(**period, team=t)["spend"])) for t in ("华东一组", "华南组"))
    assert abs(teams - Decimal(str(company))) <= Decimal("0.01") * 2


def test_it_allocates_nothing_of_a_source_without_leads_in_the_period(paid):
    """抖音 cost 3,000 but brought no lead: no share of it is anybody's."""
    company = by(report("sources", **JAN).to_json()["rows"], "source")["抖音"]
    team = by(report("sources", **JAN, team="华东一组").to_json()["rows"], "source")["抖音"]
    assert (company["spend"], team["spend"], team["cost_per_lead"]) == (3000.0, 0.0, None)


def test_it_labels_allocated_spend_on_the_terminal_and_the_page(paid, manager, client):
    with translation.override("zh-hans"):
        team = render_table(run_report("sources", ReportFilters(**JAN, team="华东一组")))
        company = render_table(run_report("sources", ReportFilters(**JAN)))
    assert "分摊投入" in team and "spend_basis" not in team
    assert "分摊投入" not in company and "投入" in company
    with translation.override("en"):
        team = render_table(run_report("sources", ReportFilters(**JAN, team="华东一组")))
    assert "Spend (allocated)" in team

    client.force_login(manager)
    page = client.get(
        reverse("report", args=["sources"]),
        {"date_from": "2026-01-01", "date_to": "2026-01-31"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    html = page.content.decode()
    assert page.context["body"]["spend_basis"] == "allocated"
    assert '<th class="num">分摊投入</th>' in html
    assert 'id="spend-allocated"' in html
    assert page.context["chart_labels"]["spend"] == "分摊投入"


@pytest.fixture
def mixed(rep, teammate, outsider):
    """Two paid channels. 百度广告 (10,000 in January): alice 30 leads that win nothing,
    mallory 10. 转介绍 (2,000 in January): alice 20 leads, each made a deal of 1,000, 15 won and
    5 lost; mallory 5 leads. The manager of 华东一组 thus holds 30 / 40 of 百度广告's leads and
    20 / 25 of 转介绍's."""
    Spend.objects.create(
        source=SourceFactory(name="百度广告"), month=dt.date(2026, 1, 1), amount=Decimal("10000")
    )
    Spend.objects.create(
        source=SourceFactory(name="转介绍"), month=dt.date(2026, 1, 1), amount=Decimal("2000")
    )
    leads(rep, 30, "百度广告", day(1))
    leads(outsider, 10, "百度广告", day(1))
    referred = leads(rep, 20, "转介绍", day(1))
    leads(outsider, 5, "转介绍", day(1))
    for i, of_lead in enumerate(referred):
        deal = make_deal(owner=rep, lead=of_lead, amount=1000, created_at=day(2))
        if i < 15:
            services.deal_close_won(deal=deal, at=day(5))
        else:
            services.deal_close_lost(deal=deal, lost_reason=lost_reason(), at=day(5))


def test_it_proposes_moving_only_a_managers_allocated_budget(mixed, manager):
    scope = resolve(ReportFilters(**JAN, viewer=manager))
    inp = collect(scope)
    spend = {s.source: (s.spend, s.spend_allocated) for s in inp.sources}
    assert spend == {"百度广告": (Decimal("7500.00"), True), "转介绍": (Decimal("1600.00"), True)}
    with translation.override("zh-hans"):
        findings, _notes = diagnose(inp)
    mix = next(f for f in findings if f.category == "channel_mix")
    assert mix.scope == {"type": "source", "key": "百度广告"}
    # Half of the allocated 7,500 moved to 转介绍, which returns 15,000 / 1,600 = 9.375 per 1
    # (百度广告 returns 0): 3,750 × 9.375. With the company's 10,000 and 2,000 it was 37,500.
    assert mix.revenue_at_stake == Decimal("35156.25")
    assert "分摊投入 ¥7,500" in mix.summary and "¥3,750" in mix.summary
