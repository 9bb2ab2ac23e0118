"""The app's shell in a real Chromium, in zh-hans and en: error pages and the favicon, the
required-field mark, Today's over-SLA list, a web-form lead reaching a rep, the header search
and a deal created from the board. Pages are checked at 1366 px and 375 px for sideways
scrolling where their layout is new."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from django.utils import timezone

from leakmap.api.models import WebForm
from leakmap.automation.models import AssignmentRule
from leakmap.crm.models import Deal, Lead
from tests.factories import LeadFactory, SourceFactory, TeamFactory, UserFactory, make_deal, stage
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
WIDTHS = (1366, 375)
TEXT = {
    "zh-hans": {
        "404": "页面不存在",
        "back": "返回上一页",
        "over_sla": "个商机超出阶段时限",
        "lost_reason": "输单原因",
        "new_deal": "新建商机",
    },
    "en": {
        "404": "This page does not exist",
        "back": "Back to the previous page",
        "over_sla": "over their stage SLA",
        "lost_reason": "Lost reason",
        "new_deal": "New deal",
    },
}


@pytest.fixture
def people(transactional_db):
    install_default_pipeline()

    def _people(language: str) -> dict:
        team = TeamFactory(name="华东一组")
        manager = UserFactory(
            username="manager", role="manager", team=team, display_name="王经理", language=language
        )
        rep = UserFactory(
            username="alice",
            role="rep",
            team=team,
            manager=manager,
            display_name="李娜",
            language=language,
        )
        outsider = UserFactory(
            username="mallory",
            role="rep",
            team=TeamFactory(name="华南组"),
            display_name="赵六",
            language=language,
        )
        admin = UserFactory(
            username="admin", role="admin", team=None, is_staff=True, is_superuser=True
        )
        return {"team": team, "manager": manager, "rep": rep, "outsider": outsider, "admin": admin}

    return _people


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def at_each_width(page, url: str, name: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        assert fits(page), (url, width)
        shot(page, f"{name}-{width}")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_missing_page_is_styled_and_leads_back(live_server, browser, people, language):
    people(language)
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/leads/")
    page.evaluate("url => { window.location.href = url }", f"{base}/leads/999999/")
    page.wait_for_url(f"{base}/leads/999999/")
    assert page.locator(".error-page h1").inner_text() == TEXT[language]["404"]
    assert page.locator(".topbar").is_visible()
    # The favicon is served.
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(f"{base}{icon}").status == 200
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        assert fits(page), width
        shot(page, f"error-404-{language}-{width}")
    page.click(f"text={TEXT[language]['back']}")
    page.wait_for_url(f"{base}/leads/")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_lost_reason_shows_it_is_required(live_server, browser, people, language):
    rep = people(language)["rep"]
    deal = make_deal(owner=rep, name="云帆 ERP", amount=120000)
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/deals/{deal.pk}/lost/")
    label = page.locator("label[for=id_lost_reason]")
    assert label.inner_text().strip() == f"{TEXT[language]['lost_reason']} *"
    assert label.locator(".req").is_visible()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_today_shows_the_deals_over_their_sla(live_server, browser, people, language):
    rep = people(language)["rep"]
    sla = stage("qualification").sla_days
    late = [make_deal(owner=rep, name=f"超时 {i}", stage_key="qualification") for i in range(2)]
    Deal.objects.filter(pk__in=[d.pk for d in late]).update(
        stage_entered_at=timezone.now() - dt.timedelta(days=sla + 2),
        last_follow_up_at=timezone.now(),
        next_follow_up=None,
    )
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    heading = page.locator("#over-sla")
    assert heading.get_attribute("data-count") == "2"
    assert TEXT[language]["over_sla"] in heading.inner_text()
    assert page.locator(".over-sla-list li").count() == 2
    assert page.locator("#follow-ups .empty").count() == 1  # no follow-up due, and it says why
    first = page.locator(".over-sla-list li").first.inner_text()
    assert f"{sla + 2} " in first and f"{sla} " in first  # days in the stage, and the SLA
    at_each_width(page, f"{base}/", f"today-over-sla-{language}")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_web_form_lead_reaches_a_reps_today(live_server, browser, people, language):
    who = people(language)
    source = SourceFactory(name="官网")
    AssignmentRule.objects.create(name="官网线索", team=who["team"], source=source)
    # A form at its defaults: no owner, "use assignment rules" off.
    form = WebForm.objects.create(
        name="试用申请",
        slug="trial",
        fields=["company", "email"],
        source=source,
        min_fill_seconds=0,
    )
    base = live_server.url
    visitor = browser.new_page(locale=LOCALES[language])
    visitor.goto(f"{base}/api/forms/trial/")
    visitor.fill("input[name=name]", "网站访客")
    visitor.fill("input[name=email]", "visitor@example.com")
    visitor.click("button[type=submit]")
    visitor.wait_for_load_state()
    lead = Lead.objects.get(name="网站访客")
    assert lead.owner in (who["rep"], who["manager"])

    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, lead.owner.username)
    assert page.locator("#new-leads").get_by_text("网站访客").is_visible()

    # The admin's embed code points at this server, not the development default's port.
    admin = browser.new_page(locale=LOCALES[language])
    sign_in(admin, base, "admin")
    admin.goto(f"{base}/admin/api/webform/{form.pk}/change/")
    snippet = admin.locator("textarea[readonly]").input_value()
    assert f'action="{base}/api/forms/trial/"' in snippet
    assert ":8000" not in snippet


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_header_search_finds_parts_of_phones_and_e_mails(
    live_server, browser, people, language
):
    who = people(language)
    LeadFactory(
        owner=who["rep"], name="张伟", company="云帆科技", phone="13800112345", email="zw@acme.cn"
    )
    LeadFactory(owner=who["outsider"], name="李雷", phone="13800198765", email="ll@acme.cn")
    make_deal(owner=who["rep"], name="云帆 8000 套")
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    for q, kind, name in (
        ("138001", "leads", "张伟"),
        ("acme.cn", "leads", "张伟"),
        ("8000", "deals", "云帆 8000 套"),
    ):
        box = page.locator(".topsearch input[name=q]")
        box.fill(q)
        box.press("Enter")
        page.wait_for_url(re.compile(r"/search/\?q="))
        group = page.locator(f"#results-{kind}")
        assert group.get_by_text(name).is_visible(), q
        assert "李雷" not in page.content(), q
    at_each_width(page, f"{base}/search/?q=138001", f"search-{language}")
    # On a phone the box sits under the header, reachable without opening the menu.
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.locator(".topsearch input").is_visible()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_a_rep_creates_a_deal_from_the_board(live_server, browser, people, language):
    rep = people(language)["rep"]
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/deals/")
    page.click("[data-new-deal]")
    page.wait_for_url(f"{base}/deals/new/")
    assert page.locator("h1").inner_text() == TEXT[language]["new_deal"]
    page.fill("input[name=name]", "新商机 CRM")
    page.fill("input[name=amount]", "88000")
    page.select_option("select[name=stage]", str(stage("proposal").pk))
    page.fill("input[name=expected_close_date]", "2027-05-31")
    page.fill("input[name=account_name]", "苏州新客户")
    page.fill("input[name=contact_name]", "周经理")
    page.fill("input[name=contact_phone]", "13911112222")
    assert fits(page)
    page.click("#deal-new button[type=submit]")
    page.wait_for_url(re.compile(r"/deals/\d+/$"))
    deal = Deal.objects.get(name="新商机 CRM")
    assert (deal.owner, deal.stage.key, deal.expected_close_date) == (
        rep,
        "proposal",
        dt.date(2027, 5, 31),
    )
    assert deal.account.name == "苏州新客户" and deal.contact.phone == "13911112222"
    at_each_width(page, f"{base}/deals/new/", f"deal-new-{language}")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_deal_and_lead_pages_fit_a_phone(live_server, browser, people, language):
    rep = people(language)["rep"]
    lead = LeadFactory(
        owner=rep, name="张伟", company="上海云帆科技有限公司", email="zw@example.com"
    )
    deal = make_deal(owner=rep, name="云帆 ERP 二期采购项目", amount=1200000, stage_key="proposal")
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 375, "height": 800})
    sign_in(page, base, "alice")
    for url, name in ((f"/deals/{deal.pk}/", "deal"), (f"/leads/{lead.pk}/", "lead")):
        page.goto(f"{base}{url}")
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .map(e => e.tagName + '.' + e.className).slice(0, 8)"""
        )
        shot(page, f"{name}-detail-{language}-375")
        assert fits(page), (url, wide)
        # The call log's form starts within the first screen and a half.
        top = page.evaluate(
            "document.querySelector('form[action$=\"/activity/\"]').getBoundingClientRect().top"
        )
        assert top < 1.5 * 800, (url, top)


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_list_filters_fold_on_a_phone_so_the_rows_come_first(
    live_server, browser, people, language
):
    rep = people(language)["rep"]
    for i in range(3):
        LeadFactory(owner=rep, name=f"线索 {i}")
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 375, "height": 800})
    sign_in(page, base, "alice")
    page.goto(f"{base}/leads/")
    fold = page.locator(".filters-fold")
    assert fold.inner_text() == {"zh-hans": "筛选", "en": "Filters"}[language]
    assert not page.locator("form.filters").is_visible()
    first_row = page.locator("table tbody tr").first
    assert first_row.bounding_box()["y"] < 800  # a row in the first screen
    assert fits(page)
    fold.click()
    assert page.locator("form.filters").is_visible()
    shot(page, f"lead-list-filters-open-{language}-375")
    # Filters in use stay in sight; on a wide screen there is nothing to fold.
    page.goto(f"{base}/leads/?q=%E7%BA%BF%E7%B4%A2")
    assert page.locator("form.filters").is_visible()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"{base}/leads/")
    assert page.locator("form.filters").is_visible() and not fold.is_visible()
