"""Date inputs in a real Chromium, in zh-hans and en: the deal edit form shows the stored expected
close date and follow-up, and saving another change keeps them.

A date input the browser cannot read (zh-hans rendered `2027/03/20`) is blank in the page, and
the form then posts the date as empty: the browser, not Django's test client, is the judge."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

import pytest

from leakmap.crm.models import Deal
from tests.factories import UserFactory, make_deal
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
CLOSE = dt.date(2027, 3, 20)
FOLLOW_UP = dt.datetime(2027, 3, 18, 10, 30, tzinfo=SHANGHAI)
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}


@pytest.fixture
def rep_in(transactional_db):
    install_default_pipeline()

    def _rep(language: str):
        return UserFactory(username="alice", role="rep", display_name="李娜", language=language)

    return _rep


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_keeps_the_close_date_and_follow_up_when_the_name_changes(
    live_server, browser, rep_in, language
):
    rep = rep_in(language)
    # In a stage that requires the expected close date, so a lost date would also be refused.
    deal = make_deal(
        owner=rep,
        name="云帆 ERP",
        amount=120000,
        stage_key="proposal",
        expected_close_date=CLOSE,
        next_follow_up=FOLLOW_UP,
    )
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/deals/{deal.pk}/edit/")
    assert page.evaluate("document.documentElement.lang") == language
    close = page.locator("input[name=expected_close_date]")
    follow_up = page.locator("input[name=next_follow_up]")
    assert close.get_attribute("type") == "date"
    assert follow_up.get_attribute("type") == "datetime-local"
    # What the browser holds (a value it cannot parse would read as "").
    assert close.input_value() == "2027-03-20"
    assert follow_up.input_value() == "2027-03-18T10:30"
    shot(page, f"deal-edit-dates-{language}")

    page.fill("input[name=name]", "云帆 ERP 二期")
    page.click("form.form-card button[type=submit]")
    page.wait_for_url(f"{base}/deals/{deal.pk}/")

    saved = Deal.objects.get(pk=deal.pk)
    assert saved.name == "云帆 ERP 二期"
    assert saved.expected_close_date == CLOSE
    assert saved.next_follow_up == FOLLOW_UP


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_saves_a_date_and_follow_up_typed_in_the_browser(live_server, browser, rep_in, language):
    rep = rep_in(language)
    deal = make_deal(owner=rep, name="云帆 ERP", amount=120000, expected_close_date=None)
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": 1366, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/deals/{deal.pk}/edit/")
    assert page.locator("input[name=expected_close_date]").input_value() == ""
    page.fill("input[name=expected_close_date]", "2027-04-30")
    page.fill("input[name=next_follow_up]", "2027-04-01T09:15")
    page.click("form.form-card button[type=submit]")
    page.wait_for_url(f"{base}/deals/{deal.pk}/")

    saved = Deal.objects.get(pk=deal.pk)
    assert saved.expected_close_date == dt.date(2027, 4, 30)
    # Entered in the user's time zone, stored as that instant: no 8-hour drift.
    assert saved.next_follow_up == dt.datetime(2027, 4, 1, 9, 15, tzinfo=SHANGHAI)
    page.goto(f"{base}/deals/{deal.pk}/edit/")
    assert page.locator("input[name=next_follow_up]").input_value() == "2027-04-01T09:15"
