"""The admin's settings in a real Chromium, in zh-hans and en, on a laptop and a phone: adding a
stage with required fields ticked as checkboxes and moving it, creating an assignment rule, and
a webhook to a private address refused with the same words as everywhere else. No page may
scroll sideways."""

from __future__ import annotations

import os

import pytest
from django.utils import translation

from leakmap.api.models import Webhook, webhook_url_error
from leakmap.automation.models import AssignmentRule
from leakmap.crm.models import Stage
from tests.factories import TeamFactory, UserFactory
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
WIDTHS = [1366, 375]
TEXT = {
    "zh-hans": {"amount": "金额", "industry": "行业", "saved_rule": "已创建"},
    "en": {"amount": "Amount", "industry": "Industry", "saved_rule": "created"},
}


@pytest.fixture
def admin_in(transactional_db, settings):
    install_default_pipeline()
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = False

    def _admin(language: str):
        return UserFactory(
            username="root", role="admin", display_name="王管理", language=language, team=None
        )

    return _admin


def open_page(browser, live_server, language: str, width: int):
    page = browser.new_page(
        locale=LOCALES[language], viewport={"width": width, "height": 900 if width > 500 else 740}
    )
    sign_in(page, live_server.url, "root")
    return page


def assert_no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        page.url,
        page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"),
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_adds_a_stage_with_required_field_checkboxes_and_moves_it_up(
    live_server, browser, admin_in, language, width
):
    admin_in(language)
    base = live_server.url
    page = open_page(browser, live_server, language, width)
    page.goto(f"{base}/settings/stages/")
    assert page.evaluate("document.documentElement.lang") == language
    assert_no_sideways_scroll(page)
    page.click("[data-add-stage]")
    page.wait_for_url(f"{base}/settings/stages/new/")
    assert_no_sideways_scroll(page)
    # Required fields are checkboxes, labelled in the page's language.
    boxes = page.locator("input[type=checkbox][name=required_fields]")
    assert boxes.count() >= 5
    assert page.locator("fieldset.field-choices label", has_text=TEXT[language]["amount"]).count()
    page.fill("input[name=label_zh]", "现场演示")
    page.fill("input[name=label_en]", "Site visit")
    page.fill("input[name=probability]", "30")
    page.fill("input[name=sla_days]", "5")
    page.check("input[name=required_fields][value=amount]")
    page.check("input[name=required_fields][value=industry]")
    shot(page, f"settings-stage-new-{language}-{width}")
    page.click("form.form-card button[type=submit]")
    page.wait_for_url(f"{base}/settings/stages/")

    new = Stage.objects.get(label_en="Site visit")
    assert (new.probability, new.sla_days, new.required_fields) == (30, 5, ["amount", "industry"])
    row = page.locator('tr[data-stage="Site visit"]')
    assert TEXT[language]["industry"] in row.inner_text()
    assert "industry" not in row.inner_text().replace("Industry", "")  # a name, not a code
    assert new.key not in page.content()
    assert_no_sideways_scroll(page)

    verbal = Stage.objects.get(pipeline__is_default=True, key="verbal")
    assert new.order == verbal.order + 1
    row.locator("button[value=up]").click()
    page.wait_for_load_state()
    rows = page.locator("table[data-stages] tbody tr")
    labels = [rows.nth(i).get_attribute("data-stage") for i in range(rows.count())]
    assert labels.index("Site visit") == labels.index("Verbal commit") - 1
    assert Stage.objects.get(pk=new.pk).order == verbal.order
    shot(page, f"settings-stages-{language}-{width}")
    assert_no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_creates_an_assignment_rule(live_server, browser, admin_in, language, width):
    admin_in(language)
    team = TeamFactory(name="华东一组")
    UserFactory(username="alice", role="rep", team=team)
    base = live_server.url
    page = open_page(browser, live_server, language, width)
    page.goto(f"{base}/settings/assignment/")
    assert_no_sideways_scroll(page)
    page.click("[data-add-rule]")
    page.wait_for_url(f"{base}/settings/assignment/new/")
    assert_no_sideways_scroll(page)
    page.fill("input[name=name]", "官网线索轮转")
    page.select_option("select[name=team]", str(team.pk))
    page.fill("input[name=daily_cap]", "0")
    page.click("form.form-card button[type=submit]")
    # A cap of 0 would hand out nothing: refused, with the reason beside the field.
    error = page.locator(".field.has-error small.error")
    assert error.count() == 1
    assert not AssignmentRule.objects.exists()
    page.fill("input[name=daily_cap]", "15")
    page.click("form.form-card button[type=submit]")
    page.wait_for_url(f"{base}/settings/assignment/")

    rule = AssignmentRule.objects.get()
    assert (rule.name, rule.team, rule.daily_cap, rule.is_active) == (
        "官网线索轮转",
        team,
        15,
        True,
    )
    table = page.locator("table[data-assignment-rules]").inner_text()
    assert "官网线索轮转" in table and "华东一组" in table
    assert (
        TEXT[language]["saved_rule"]
        in page.locator(".flash-stack, [role=status]").first.inner_text()
    )
    shot(page, f"settings-assignment-{language}-{width}")
    assert_no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_refuses_a_webhook_to_a_private_address(live_server, browser, admin_in, language, width):
    admin_in(language)
    base = live_server.url
    page = open_page(browser, live_server, language, width)
    page.goto(f"{base}/settings/webhooks/")
    assert_no_sideways_scroll(page)
    page.click("[data-add-webhook]")
    page.wait_for_url(f"{base}/settings/webhooks/new/")
    page.fill("input[name=url]", "http://192.168.1.20:8080/hook")
    page.check("input[name=events][value='deal.won']")
    page.click("form.form-card button[type=submit]")

    with translation.override(language):
        expected = webhook_url_error("http://192.168.1.20:8080/hook")
    error = page.locator(".field.has-error small.error").first
    assert error.inner_text().strip() == expected
    assert not Webhook.objects.exists()
    shot(page, f"settings-webhook-refused-{language}-{width}")
    assert_no_sideways_scroll(page)

    page.fill("input[name=url]", "https://93.184.216.34/hook")
    page.click("form.form-card button[type=submit]")
    page.wait_for_selector("[data-secret]")
    hook = Webhook.objects.get()
    assert hook.events == ["deal.won"]
    assert page.locator("[data-secret]").inner_text() == hook.secret
    assert_no_sideways_scroll(page)
