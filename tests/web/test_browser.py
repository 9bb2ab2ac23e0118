"""A rep's day and a manager's look, driven through a real Chromium against the live server."""

from __future__ import annotations

import json
import os

import pytest

from leakmap.crm.models import Deal, Lead, LeadStatus, Stage
from tests.factories import UserFactory, make_deal
from tests.web.browser import (
    build_company,
    install_default_pipeline,
    shot,
    sign_in,
)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Not serialized_rollback: on SQLite, deserialising into a database that still holds the
# migrated rows fails on django_content_type; each test puts back the default pipeline itself.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pipeline(transactional_db):
    install_default_pipeline()


@pytest.fixture
def people(pipeline):
    from tests.factories import TeamFactory

    team = TeamFactory(name="华东一组")
    manager = UserFactory(username="manager", role="manager", team=team, display_name="王经理")
    rep = UserFactory(username="alice", role="rep", team=team, manager=manager, display_name="李娜")
    teammate = UserFactory(
        username="bob", role="rep", team=team, manager=manager, display_name="赵强"
    )
    outsider = UserFactory(username="mallory", role="rep", team=TeamFactory(name="华南组"))
    return {"manager": manager, "rep": rep, "teammate": teammate, "outsider": outsider}


def column(page, key: str):
    stage = Stage.objects.get(pipeline__is_default=True, key=key)
    return page.locator(f'.cards[data-stage="{stage.pk}"]')


def drag(page, deal: Deal, key: str) -> None:
    """Drop the deal's card on a column and wait for the server's answer (Sortable moves the
    card in the page at once; the board the server sends back is the truth)."""
    card = page.locator(f'.deal-card[data-deal="{deal.pk}"]')
    expected = "/lost/" if key == "lost" else "/move/"
    with page.expect_response(lambda r: expected in r.url):
        card.drag_to(column(page, key))
    page.wait_for_load_state("networkidle")


def test_it_takes_a_lead_through_the_kanban_to_lost(live_server, browser, people):
    base = live_server.url
    # Wide enough for all eight columns: a drag cannot scroll the board sideways mid-flight.
    page = browser.new_page(locale="zh-CN", viewport={"width": 1920, "height": 1000})
    sign_in(page, base, "alice")
    shot(page, "today-empty")

    # Create a lead.
    page.goto(f"{base}/leads/new/")
    page.fill("input[name=name]", "陈静")
    page.fill("input[name=company]", "杭州青禾科技")
    page.fill("input[name=budget]", "88000")
    page.click("button[type=submit]")
    lead = Lead.objects.get(name="陈静")
    page.wait_for_url(f"{base}/leads/{lead.pk}/")
    assert lead.owner == people["rep"]

    # Log a call through htmx: it lands in the timeline without a reload.
    page.fill("#lead-activity input[name=subject]", "首次电话")
    page.click("#lead-activity button[type=submit]")
    page.locator("#lead-activity .timeline-item").first.wait_for()
    assert "首次电话" in page.inner_text("#lead-activity")
    shot(page, "lead-detail")

    # Convert it (no expected close date yet: the proposal stage will ask for one).
    page.click(f'a[href="/leads/{lead.pk}/convert/"]')
    shot(page, "lead-convert")
    page.click("button[type=submit]")
    deal = Deal.objects.get(lead=lead)
    page.wait_for_url(f"{base}/deals/{deal.pk}/")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert deal.amount == 88000
    assert deal.account.name == "杭州青禾科技"

    # Drag to needs analysis: accepted.
    page.goto(f"{base}/deals/")
    drag(page, deal, "needs_analysis")
    page.locator(
        f'.cards[data-stage="{column_id("needs_analysis")}"] [data-deal="{deal.pk}"]'
    ).wait_for()
    deal.refresh_from_db()
    assert deal.stage.key == "needs_analysis"

    # Drag to proposal: the expected close date is missing, so a dialog asks for it (the card
    # stays where the server has it meanwhile); filled, the deal is saved and moved at once.
    drag(page, deal, "proposal")
    page.locator("#modal[open] input[name=expected_close_date]").wait_for()
    assert column(page, "needs_analysis").locator(f'[data-deal="{deal.pk}"]').count() == 1
    deal.refresh_from_db()
    assert deal.stage.key == "needs_analysis"
    shot(page, "deal-board-asks-fields")
    page.fill("#modal input[name=expected_close_date]", "2026-12-31")
    page.click("#modal button[type=submit]")
    column(page, "proposal").locator(f'[data-deal="{deal.pk}"]').wait_for()
    deal.refresh_from_db()
    assert deal.stage.key == "proposal"

    # Drop on lost: a form asks for the reason; without one it is refused.
    drag(page, deal, "lost")
    page.locator("#modal form.lost-form").wait_for()
    page.click("#modal button[type=submit]")
    page.locator("#modal .error").wait_for()
    assert "输单原因" in page.inner_text("#modal")
    deal.refresh_from_db()
    assert deal.stage.key == "proposal"
    shot(page, "deal-lost-refused")

    page.select_option("#modal select[name=lost_reason]", label="价格过高")
    page.click("#modal button[type=submit]")
    column(page, "lost").locator(f'[data-deal="{deal.pk}"]').wait_for()
    deal.refresh_from_db()
    assert deal.stage.key == "lost"
    assert deal.lost_reason.name == "价格过高"
    assert deal.closed_at is not None
    assert list(deal.stage_changes.values_list("to_stage__key", flat=True)) == [
        "qualification",
        "needs_analysis",
        "proposal",
        "lost",
    ]
    shot(page, "deal-board")

    page.goto(f"{base}/deals/{deal.pk}/")
    shot(page, "deal-detail")

    # The deal shows in the funnel chart (it reached proposal) and the lost-reasons chart.
    page.goto(f"{base}/reports/funnel/")
    page.locator("#chart[data-ready] svg").wait_for()
    funnel = {r["step"]: r["count"] for r in report_rows(page)}
    assert funnel["leads"] == 1
    assert funnel["deals"] == 1
    assert funnel["stage:proposal"] == 1
    assert funnel["stage:proposal_review"] == 0
    assert "已发方案/报价" in page.inner_html("#chart svg")
    shot(page, "report-funnel")
    page.goto(f"{base}/reports/lost-reasons/")
    page.locator("#chart[data-ready] svg").wait_for()
    assert [(r["reason"], r["deals"], r["amount"]) for r in report_rows(page)] == [
        ("价格过高", 1, 88000.0)
    ]
    assert "价格过高" in page.inner_html("#chart svg")
    shot(page, "report-lost-reasons")
    page.close()


def report_rows(page) -> list[dict]:
    """The JSON rows the page fed its chart."""
    return json.loads(page.inner_text("#report-data"))["rows"]


def column_id(key: str) -> int:
    return Stage.objects.get(pipeline__is_default=True, key=key).pk


def test_it_shows_a_manager_the_team_and_a_phone_sized_board(live_server, browser, people):
    make_deal(owner=people["rep"], name="李娜的单子", amount=30000)
    make_deal(owner=people["teammate"], name="赵强的单子", amount=45000)
    make_deal(owner=people["outsider"], name="华南的单子", amount=99000)
    base = live_server.url
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    sign_in(page, base, "manager")
    page.goto(f"{base}/deals/")
    board = page.inner_text("#board")
    assert "李娜的单子" in board
    assert "赵强的单子" in board
    assert "华南的单子" not in board
    shot(page, "deal-board-manager")
    page.close()

    phone = browser.new_page(locale="zh-CN", viewport={"width": 375, "height": 812})
    sign_in(phone, base, "manager")
    phone.goto(f"{base}/deals/")
    # The board scrolls sideways inside its frame; the page itself does not get wider.
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    shot(phone, "deal-board-375")
    # Every main page fits the phone's width (tables scroll inside their frame).
    for name, url in [
        ("today", "/"),
        ("leads", "/leads/"),
        ("deal-list", "/deals/list/"),
        ("diagnosis", "/reports/diagnosis/"),
        ("funnel", "/reports/funnel/"),
        ("weekly", "/reports/weekly/"),
    ]:
        phone.goto(f"{base}{url}")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, name
        shot(phone, f"{name}-375")
    # The menu folds behind the burger and opens on tap.
    assert not phone.locator(".mainnav").is_visible()
    phone.click(".nav-burger")
    assert phone.locator(".mainnav").is_visible()
    shot(phone, "menu-375")
    phone.close()


def test_it_gives_a_manager_the_diagnosis_weekly_review_and_reports(live_server, browser, people):
    build_company(people)
    make_deal(owner=people["outsider"], name="华南的单子", amount=99000)
    base = live_server.url
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    sign_in(page, base, "manager")
    shot(page, "today-manager")
    assert "华南的单子" not in page.content()

    page.goto(f"{base}/reports/diagnosis/")
    page.locator("h1").wait_for()
    cards = page.locator("[data-testid=finding]")
    for i in range(cards.count()):
        cards.nth(i).locator(".finding-chart[data-ready] svg").wait_for()
    shot(page, "diagnosis")

    page.goto(f"{base}/reports/weekly/")
    page.locator("#chart[data-ready] svg").wait_for()
    shot(page, "weekly-review")
    page.emulate_media(media="print")
    assert not page.locator(".topbar").is_visible()
    shot(page, "weekly-review-print")
    page.emulate_media(media="screen")

    for name in ("owners", "sources", "lost-reasons", "stage-time", "forecast"):
        page.goto(f"{base}/reports/{name}/")
        page.locator("#chart[data-ready] svg").wait_for()
        shot(page, f"report-{name}")
    page.goto(f"{base}/reports/owners/")
    assert {r["owner"] for r in report_rows(page)} == {"alice", "bob", "manager"}

    page.goto(f"{base}/leads/")
    shot(page, "lead-list")
    page.goto(f"{base}/deals/")
    shot(page, "deal-board-team")

    # Switch to English: the choice sticks to the user and the next page speaks it.
    page.click(".langswitch button")
    page.wait_for_url(f"{base}/deals/")
    assert page.inner_text(".mainnav").split()[:4] == ["Today", "Tasks", "Leads", "Deals"]
    people["manager"].refresh_from_db()
    assert people["manager"].language == "en"
    shot(page, "deal-board-team-en")
    page.goto(f"{base}/reports/diagnosis/")
    shot(page, "diagnosis-en")
    page.close()
