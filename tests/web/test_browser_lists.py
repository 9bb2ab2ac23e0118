"""The record lists in a real Chromium, zh-hans and en, at 1366 and 375 px: sort by a header,
save and pick a view, tick every row and hand them over, edit a status and an amount in the
row. No page scrolls sideways (a table scrolls inside its own container)."""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest

from leakmap.accounts.models import SavedView
from leakmap.crm import services
from leakmap.crm.models import Deal, Lead
from tests.factories import LeadFactory, SourceFactory, TeamFactory, UserFactory, make_deal
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
TEXT = {
    "zh-hans": {"contacted": "已联系", "assigned": "交给", "saved_views": "已存视图"},
    "en": {"contacted": "Contacted", "assigned": "given to", "saved_views": "Saved views"},
}


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        page.url,
        page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"),
    )


@pytest.fixture
def company(transactional_db):
    install_default_pipeline()

    def _company(language: str):
        team = TeamFactory(name="华东一组")
        manager = UserFactory(
            username="wang", role="manager", team=team, display_name="王经理", language=language
        )
        rep = UserFactory(username="alice", team=team, manager=manager, display_name="李娜")
        mate = UserFactory(username="bob", team=team, manager=manager, display_name="张伟")
        source = SourceFactory(name="官网表单")
        for i, name in enumerate(["陈晨", "Bai Lu", "Ann Lee", "赵磊", "Cao Yu"]):
            LeadFactory(owner=rep, source=source, name=name, budget=Decimal(1000 * (i + 1)))
        account = services.account_create(name="上海云帆科技", owner=rep)
        services.contact_create(name="王芳", account=account, owner=rep)
        make_deal(owner=rep, name="云帆 ERP", amount=120000, account=account)
        make_deal(owner=mate, name="华东 CRM", amount=50000)
        return manager, rep, mate

    return _company


@pytest.mark.parametrize("width", [1366, 375])
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_sorts_saves_a_view_acts_in_bulk_and_edits_in_the_row(
    live_server, browser, company, language, width
):
    manager, rep, mate = company(language)
    text = TEXT[language]
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": width, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, base, "wang")

    # Sort: a click on the name header sorts ascending, a second descending.
    page.goto(f"{base}/leads/")
    assert page.evaluate("document.documentElement.lang") == language
    no_sideways_scroll(page)
    header = page.locator("th", has=page.locator("a[href*='sort=name']"))
    header.locator("a").click()
    page.wait_for_url(re.compile(r"sort=name"))
    assert page.locator("th[aria-sort=ascending]").count() == 1
    first = page.locator("tbody tr").first.locator("td").nth(1).inner_text()
    assert first == "Ann Lee"
    page.locator("th[aria-sort=ascending] a").click()
    page.wait_for_url(re.compile(r"sort=-name"))
    assert page.locator("tbody tr").first.locator("td").nth(1).inner_text() == "陈晨"
    no_sideways_scroll(page)

    # Save the sorted list as a view shared with the team; it is offered in the dropdown.
    page.locator("details.saved-views > summary").click()
    no_sideways_scroll(page)
    page.fill(".saved-view-save input[name=name]", "按姓名倒序")
    page.check(".saved-view-save input[name=share]")
    page.click(".saved-view-save button[type=submit]")
    page.wait_for_url(re.compile(r"/leads/\?sort=-name"))
    view = SavedView.objects.get()
    assert (view.query, view.shared, view.team_id) == ("sort=-name", True, manager.team_id)
    page.locator("details.saved-views > summary").click()
    assert page.locator(".saved-view-list a", has_text="按姓名倒序").is_visible()
    shot(page, f"lists-leads-views-{language}-{width}")
    page.locator("details.saved-views > summary").click()

    # Tick every row of the page and hand them to a teammate.
    page.check("[data-select-all]")
    assert page.locator("[data-row-select]:checked").count() == 5
    assert "5" in page.locator("[data-bulk-count]").inner_text()
    page.select_option("#bulk-form select[name=action]", "assign")
    page.select_option("#bulk-form select[name=owner]", str(mate.pk))
    page.click("#bulk-form button[type=submit]")
    page.wait_for_url(re.compile(r"/leads/\?sort=-name"))
    assert text["assigned"] in page.locator(".flash-success").inner_text()
    assert set(Lead.objects.values_list("owner_id", flat=True)) == {mate.pk}
    no_sideways_scroll(page)

    # Edit a status in its row: the row comes back re-rendered, the rest of the page stays.
    row = page.locator("tbody tr").first
    name = row.locator("td").nth(1).inner_text()
    row.locator("button.cell-edit").first.click()
    page.locator("tbody tr select[name=status]").select_option("contacted")
    page.locator("tbody tr form.inline-edit button[type=submit]").click()
    page.locator("tbody tr").first.get_by_text(text["contacted"]).wait_for()
    assert Lead.objects.get(name=name).status == "contacted"
    no_sideways_scroll(page)

    # The deal list: an amount edited in its row.
    page.goto(f"{base}/deals/list/")
    no_sideways_scroll(page)
    deal = Deal.objects.get(name="云帆 ERP")
    row = page.locator(f"#deal-row-{deal.pk}")
    row.locator("td.num button.cell-edit").click()
    page.fill(f"#deal-row-{deal.pk} input[name=amount]", "130000")
    page.locator(f"#deal-row-{deal.pk} form.inline-edit button[type=submit]").click()
    page.locator(f"#deal-row-{deal.pk} td.num button.cell-edit").wait_for()
    deal.refresh_from_db()
    assert deal.amount == Decimal("130000")
    assert "130,000" in page.locator(f"#deal-row-{deal.pk} td.num").inner_text()
    shot(page, f"lists-deals-{language}-{width}")

    for url in ("/accounts/", "/contacts/", "/deals/list/?sort=-amount"):
        page.goto(f"{base}{url}")
        assert page.locator("table.list-table").count() == 1
        no_sideways_scroll(page)
    page.close()
