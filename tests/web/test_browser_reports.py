"""The report pages in a real Chromium, in both languages, on a laptop and on a phone: the weekly
review's week picker, named periods and the as-of date, no internal code on any report page,
and coaching sheets that show their samples and fit the screen."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from tests.factories import UserFactory
from tests.web.browser import build_company, install_default_pipeline, shot, sign_in
from tests.web.report_text import codes_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ["funnel", "owners", "sources", "lost-reasons", "stage-time", "stuck", "cycle", "forecast"]
VIEWS = [
    pytest.param("zh-CN", 1366, id="zh-1366"),
    pytest.param("zh-CN", 375, id="zh-375"),
    pytest.param("en-US", 1366, id="en-1366"),
    pytest.param("en-US", 375, id="en-375"),
]
WORDS = {
    "zh-CN": {"custom": "自定义日期", "range": "周:", "you": "你"},
    "en-US": {"custom": "Custom dates", "range": "Week ", "you": "You"},
}


@pytest.fixture
def people(transactional_db):
    from tests.factories import TeamFactory

    install_default_pipeline()
    team = TeamFactory(name="华东一组")
    manager = UserFactory(username="manager", role="manager", team=team, display_name="王经理")
    rep = UserFactory(username="alice", role="rep", team=team, manager=manager, display_name="李娜")
    teammate = UserFactory(
        username="bob", role="rep", team=team, manager=manager, display_name="赵强"
    )
    outsider = UserFactory(username="mallory", role="rep", team=TeamFactory(name="华南组"))
    people = {"manager": manager, "rep": rep, "teammate": teammate, "outsider": outsider}
    build_company(people)
    return people


def _fits(page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways: {width}"


def _local_today() -> dt.date:
    from leakmap.analytics.filters import local_today

    return local_today()


def _iso(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@pytest.mark.parametrize("locale, width", VIEWS)
def test_the_report_pages_in_a_browser(live_server, browser, people, locale, width):
    lang = "zh" if locale.startswith("zh") else "en"
    base = live_server.url
    page = browser.new_page(locale=locale, viewport={"width": width, "height": 900})
    sign_in(page, base, "manager")

    # Weekly review: the last complete week by default, a picker and the week before.
    today = _local_today()
    last_monday = today - dt.timedelta(days=today.weekday() + 7)
    page.goto(f"{base}/reports/weekly/")
    picker = page.locator("input[name=week]")
    assert picker.get_attribute("type") == "week"
    assert picker.input_value() == _iso(last_monday)
    assert last_monday.isoformat() in page.inner_text("[data-testid=week-range]")
    _fits(page)
    shot(page, f"weekly-{lang}-{width}")
    page.click("[data-testid=week-prev]")
    page.wait_for_url(re.compile(r"week="))
    before = last_monday - dt.timedelta(weeks=1)
    assert page.locator("input[name=week]").input_value() == _iso(before)
    assert before.isoformat() in page.inner_text("[data-testid=week-range]")
    assert page.locator("[data-testid=week-next]").count() == 1
    # Choosing the running week says that the comparison is over the same days.
    page.fill("input[name=week]", _iso(today))
    page.click("form[data-report-filters] button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("[data-testid=week-partial]").count() == 1
    assert page.locator("[data-testid=week-next]").count() == 0

    # Named periods and the as-of date on a report page.
    as_of = today - dt.timedelta(days=40)
    first = as_of.replace(day=1)
    page.goto(f"{base}/reports/funnel/")
    if page.locator(".filters-fold").is_visible():  # on a phone the filters fold away
        page.click(".filters-fold")
    page.fill("input[name=date_from]", "2026-01-01")
    page.dispatch_event("input[name=date_from]", "change")
    assert page.locator("select[name=preset]").input_value() == "custom"
    page.select_option("select[name=preset]", "this_month")
    assert page.locator("input[name=date_from]").input_value() == ""
    page.fill("input[name=as_of]", as_of.isoformat())
    page.click("form[data-report-filters] button[type=submit]")
    page.wait_for_url(re.compile(r"preset=this_month"))
    assert page.locator("input[name=date_from]").input_value() == first.isoformat()
    assert page.locator("select[name=preset]").input_value() == "this_month"
    period = page.inner_text("[data-testid=report-period]")
    assert first.isoformat() in period and as_of.strftime("%Y") in period
    _fits(page)
    shot(page, f"report-presets-{lang}-{width}")

    # No internal code on any report page, and none scrolls sideways.
    for url in [f"/reports/{name}/" for name in PAGES] + ["/reports/weekly/", "/reports/"]:
        page.goto(base + url)
        text = page.inner_text("main")
        assert codes_in(text, lang, usernames=("alice", "bob", "mallory")) == [], url
        _fits(page)

    # The coaching sheets: each rate with its sample, the rep by name, fitting the screen.
    page.goto(f"{base}/reports/diagnosis/")
    text = page.inner_text("main")
    assert codes_in(text, lang, usernames=("alice", "bob", "mallory")) == []
    sheets = page.locator("[data-testid=coaching-sheet]")
    assert sheets.count() == 3
    cells = sheets.first.locator("tbody td.num").all_inner_texts()
    assert cells and all(re.fullmatch(r"(\d+\.\d%\s*\(\d+/\d+\)|–)", c.strip()) for c in cells)
    # Another rep's sheet names them; the manager's own sheet (they sell too) says "you".
    for i in range(sheets.count()):
        title = sheets.nth(i).locator("h3").inner_text()
        column = sheets.nth(i).locator("thead th").nth(1).inner_text().strip()
        if title.startswith("王经理"):
            assert column == WORDS[locale]["you"]
        else:
            assert column and title.startswith(column), (title, column)
    for table in page.locator(".coaching-table").all():
        assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    _fits(page)
    shot(page, f"diagnosis-coaching-{lang}-{width}")
    page.close()

    # The rep reading their own sheet is addressed as "you".
    own = browser.new_page(locale=locale, viewport={"width": width, "height": 900})
    sign_in(own, base, "alice")
    own.goto(f"{base}/reports/diagnosis/")
    headers = own.locator(".coaching-table thead").all_inner_texts()
    assert headers and WORDS[locale]["you"] in headers[0]
    _fits(own)
    own.close()
