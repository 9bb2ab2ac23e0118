"""The deal board and the deal page's move control in a real Chromium, in both languages, on a
laptop (1366 px, where won and lost used to be off-screen) and a phone (375 px): closing on the
pinned drop zones, the required-fields dialog, a moved card kept in sight, and undo."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from leakmap.crm import services
from leakmap.crm.models import Deal, Stage
from leakmap.web.views.deals import CARDS_PER_COLUMN
from tests.factories import TeamFactory, UserFactory, make_deal
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGUAGES = {
    "zh-hans": {"locale": "zh-CN", "lost_reason": "输单原因", "date_field": "预计成交日期"},
    "en": {"locale": "en-US", "lost_reason": "lost reason", "date_field": "expected close date"},
}
WIDTHS = {1366: 768, 375: 812}
CASES = [(lang, width) for lang in LANGUAGES for width in WIDTHS]


def stage(key: str) -> Stage:
    return Stage.objects.get(pipeline__is_default=True, key=key)


@pytest.fixture
def rep(transactional_db):
    install_default_pipeline()
    team = TeamFactory(name="华东一组")
    manager = UserFactory(username="manager", role="manager", team=team, display_name="王经理")
    return UserFactory(
        username="alice", role="rep", team=team, manager=manager, display_name="李娜"
    )


def history(deal: Deal) -> list[str]:
    return list(deal.stage_changes.order_by("at", "id").values_list("to_stage__key", flat=True))


def open_page(browser, base: str, rep, language: str, width: int):
    rep.language = language
    rep.save()
    page = browser.new_page(
        locale=LANGUAGES[language]["locale"], viewport={"width": width, "height": WIDTHS[width]}
    )
    sign_in(page, base, rep.username)
    return page


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url


def in_viewport(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
        return r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.top >= 0
          && r.bottom <= innerHeight; }""",
        selector,
    )


def modal_closed(page) -> None:
    # (A locator, not wait_for_function: the page's CSP refuses the eval that one needs.)
    page.locator("#modal:not([open])").wait_for(state="attached")


def card(page, deal: Deal):
    return page.locator(f'#board .deal-card[data-deal="{deal.pk}"]')


@pytest.mark.parametrize(("language", "width"), CASES)
def test_it_closes_on_the_pinned_zones_with_a_confirmation_and_undoes(
    live_server, browser, rep, language, width
):
    words = LANGUAGES[language]
    verbal = make_deal(owner=rep, name="华东 OA", amount=90000, stage_key="verbal")
    doomed = make_deal(owner=rep, name="云帆 ERP", amount=120000)
    page = open_page(browser, live_server.url, rep, language, width)
    page.goto(f"{live_server.url}/deals/")
    no_sideways_scroll(page)
    # Won and lost are on screen without scrolling the board, at every width.
    assert in_viewport(page, "[data-testid=dropzone-won]")
    assert in_viewport(page, "[data-testid=dropzone-lost]")
    # Display names, not usernames, on the cards.
    assert "李娜" in card(page, verbal).inner_text()
    assert "alice" not in page.inner_text("#board")
    shot(page, f"board-{language}-{width}")

    # A drop on won asks first; nothing is recorded until confirmed.
    card(page, verbal).drag_to(page.locator("[data-testid=dropzone-won]"))
    page.locator("#modal[open] form.move-form").wait_for()
    shot(page, f"board-won-confirm-{language}-{width}")
    assert history(Deal.objects.get(pk=verbal.pk)) == ["verbal"]
    # The keyboard answers: the confirm button has the focus.
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")
    page.locator("[data-testid=move-toast]").wait_for()
    modal_closed(page)
    verbal.refresh_from_db()
    assert verbal.stage.key == "won" and verbal.closed_at is not None
    assert card(page, verbal).count() == 1  # in sight in the won column
    no_sideways_scroll(page)

    # Undo: a move back, recorded; the history keeps the close.
    page.click("[data-testid=undo-move]")
    page.locator(f'.cards[data-stage="{stage("verbal").pk}"] [data-deal="{verbal.pk}"]').wait_for()
    verbal.refresh_from_db()
    assert verbal.stage.key == "verbal" and verbal.closed_at is None
    assert history(verbal) == ["verbal", "won", "verbal"]
    assert verbal.stage_changes.order_by("at", "id").last().by == rep

    # A drop on lost asks for the reason; without one it is refused with a message.
    card(page, doomed).drag_to(page.locator("[data-testid=dropzone-lost]"))
    page.locator("#modal[open] form.lost-form").wait_for()
    page.click("#modal button[type=submit]")
    page.locator("#modal .error").wait_for()
    assert words["lost_reason"] in page.inner_text("#modal").lower() or words[
        "lost_reason"
    ] in page.inner_text("#modal")
    assert Deal.objects.get(pk=doomed.pk).stage.key == "qualification"
    shot(page, f"board-lost-refused-{language}-{width}")
    page.select_option("#modal select[name=lost_reason]", index=1)
    page.click("#modal button[type=submit]")
    page.locator("[data-testid=move-toast]").wait_for()
    modal_closed(page)
    doomed.refresh_from_db()
    assert doomed.stage.key == "lost" and doomed.lost_reason is not None
    assert history(doomed) == ["qualification", "lost"]
    # Cancelling a won question with Escape leaves the deal where it was.
    card(page, verbal).drag_to(page.locator("[data-testid=dropzone-won]"))
    page.locator("#modal[open] form.move-form").wait_for()
    page.keyboard.press("Escape")
    modal_closed(page)
    assert history(Deal.objects.get(pk=verbal.pk)) == ["verbal", "won", "verbal"]
    page.close()


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_it_asks_a_drop_for_the_missing_fields_and_keeps_the_card_in_sight(
    live_server, browser, rep, language
):
    words = LANGUAGES[language]
    # A full proposal column: the card dropped there must not vanish behind "n more deals".
    for i in range(CARDS_PER_COLUMN + 1):
        filler = make_deal(
            owner=rep, name=f"方案{i:02d}", created_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        )
        services.deal_move(deal=filler, stage=stage("proposal"))
    deal = make_deal(
        owner=rep, name="青禾 CRM", expected_close_date=None, stage_key="needs_analysis"
    )
    page = open_page(browser, live_server.url, rep, language, 1366)
    page.goto(f"{live_server.url}/deals/")
    # A column taller than the screen: the close zones are still in sight.
    assert in_viewport(page, "[data-testid=dropzone-won]")
    assert in_viewport(page, "[data-testid=dropzone-lost]")
    proposal = page.locator(f'.cards[data-stage="{stage("proposal").pk}"]')
    card(page, deal).drag_to(proposal)
    page.locator("#modal[open] form.move-form").wait_for()
    # Exactly the missing field, as a date input that takes ISO dates in every language.
    fields = page.eval_on_selector_all(
        "#modal form input:not([type=hidden]), #modal form select",
        "els => els.map(e => [e.name, e.type])",
    )
    assert fields == [["expected_close_date", "date"]]
    assert page.evaluate("document.activeElement.name") == "expected_close_date"
    # The card is back where the server has it while the question is open.
    assert (
        page.locator(
            f'.cards[data-stage="{stage("needs_analysis").pk}"] [data-deal="{deal.pk}"]'
        ).count()
        == 1
    )
    page.click("#modal button[type=submit]")
    page.locator("#modal .error").wait_for()
    assert words["date_field"] in page.inner_text("#modal").lower() or words[
        "date_field"
    ] in page.inner_text("#modal")
    assert history(Deal.objects.get(pk=deal.pk)) == ["needs_analysis"]
    shot(page, f"board-fields-refused-{language}")

    page.fill("#modal input[name=expected_close_date]", "2027-03-20")
    page.click("#modal button[type=submit]")
    page.locator("[data-testid=move-toast]").wait_for()
    modal_closed(page)
    deal.refresh_from_db()
    assert deal.stage.key == "proposal"
    assert deal.expected_close_date == dt.date(2027, 3, 20)
    assert history(deal) == ["needs_analysis", "proposal"]
    assert in_viewport(page, "[data-testid=undo-move]")
    moved = proposal.locator(f'[data-deal="{deal.pk}"]')
    assert moved.count() == 1 and moved.is_visible()
    # Not hidden behind the pinned dock either: the point at its middle is the card's.
    assert page.evaluate(
        """(id) => { const c = document.querySelector(`#board .deal-card[data-deal="${id}"]`);
        const r = c.getBoundingClientRect();
        return c.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)); }""",
        deal.pk,
    )
    assert proposal.locator(".deal-card").count() == CARDS_PER_COLUMN + 1
    shot(page, f"board-moved-in-sight-{language}")
    no_sideways_scroll(page)
    page.close()


@pytest.mark.parametrize(("language", "width"), CASES)
def test_it_asks_the_deal_pages_move_for_the_missing_fields_then_offers_undo(
    live_server, browser, rep, language, width
):
    words = LANGUAGES[language]
    deal = make_deal(owner=rep, name="青禾 CRM", amount=0, expected_close_date=None)
    base = live_server.url
    page = open_page(browser, base, rep, language, width)
    page.goto(f"{base}/deals/{deal.pk}/")
    no_sideways_scroll(page)
    assert "10%" in page.inner_text(".stage-picker")
    page.check(f'.stage-picker input[value="{stage("proposal").pk}"]')
    page.click(".stage-picker button[type=submit]")
    page.locator("#modal[open] form.move-form").wait_for()
    fields = page.eval_on_selector_all(
        "#modal form input:not([type=hidden]), #modal form select",
        "els => els.map(e => [e.name, e.type])",
    )
    assert fields == [["amount", "number"], ["expected_close_date", "date"]]
    no_sideways_scroll(page)
    page.fill("#modal input[name=amount]", "66000")
    page.click("#modal button[type=submit]")
    page.locator("#modal .error").wait_for()
    assert words["date_field"] in page.inner_text("#modal").lower() or words[
        "date_field"
    ] in page.inner_text("#modal")
    deal.refresh_from_db()
    assert (deal.stage.key, deal.amount, deal.expected_close_date) == ("qualification", 0, None)
    shot(page, f"deal-move-fields-{language}-{width}")

    page.fill("#modal input[name=expected_close_date]", "2027-03-20")
    page.click("#modal button[type=submit]")
    page.locator("[data-testid=undo-move]").wait_for()
    deal.refresh_from_db()
    assert (deal.stage.key, deal.amount, deal.expected_close_date) == (
        "proposal",
        66000,
        dt.date(2027, 3, 20),
    )
    no_sideways_scroll(page)
    page.click("[data-testid=undo-move]")
    page.wait_for_load_state("networkidle")
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    assert history(deal) == ["qualification", "proposal", "qualification"]
    # The history table shows the three rows, by display name.
    rows = page.locator("table tbody tr")
    assert rows.count() == 3
    assert "李娜" in rows.nth(2).inner_text()
    page.close()
