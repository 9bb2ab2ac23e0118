"""Stage moves on the board and the deal page: the dialog for the fields a stage requires, the
confirmation of a won close, the undo of the last move, and who may do any of it."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from leakmap.crm import services
from leakmap.crm.models import Account, Deal, Stage, StageChange
from leakmap.web.views.deals import CARDS_PER_COLUMN as CARDS
from tests.factories import lost_reason, make_deal, stage

HX = {"HTTP_HX_REQUEST": "true"}
# Stage keys that no label or criterion contains as such (English labels share the others'
# words: "Qualification", "a written proposal").
KEYS = re.compile(r"\b(needs_analysis|proposal_review|qualification|verbal)\b")


def history(deal: Deal) -> list[str]:
    return list(deal.stage_changes.order_by("at", "id").values_list("to_stage__key", flat=True))


def move(client, deal: Deal, key: str, **data):
    return client.post(reverse("deal_move", args=[deal.pk]), {"stage": stage(key).pk, **data}, **HX)


def inputs(html: str) -> dict[str, str]:
    """name → type of the visible inputs and selects of a form (of a whole page: of its main
    content, not the header's search box)."""
    main = re.search(r"<main\b.*</main>", html, re.S)
    found = {}
    for tag in re.findall(r"<(?:input|select)\b[^>]*>", main.group(0) if main else html):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        kind = kind.group(1) if kind else "select"
        if name and kind != "hidden":
            found[name.group(1)] = kind
    return found


# --- Required fields -----------------------------------------------------------------------------


def test_it_asks_a_board_drop_for_exactly_the_missing_fields_and_moves_nothing(login, rep):
    deal = make_deal(owner=rep, amount=5000, expected_close_date=None)
    response = move(login(rep), deal, "proposal", on_board="1")
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#board"
    html = response.content.decode()
    # The board comes back with the card where the server has it, the question over it.
    columns = {c["stage"].key: c for c in response.context["columns"]}
    assert [d.pk for d in columns["qualification"]["cards"]] == [deal.pk]
    dialog = html[html.index('hx-swap-oob="innerHTML"') :]
    # Proposal requires amount and the expected close date; the amount is there.
    assert inputs(dialog) == {"expected_close_date": "date"}
    assert "data-modal-open" in dialog
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    assert history(deal) == ["qualification"]


def test_it_refuses_the_dialog_with_a_field_left_empty_and_saves_nothing(login, rep):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    client = login(rep)
    asked = move(client, deal, "proposal")
    assert inputs(asked.content.decode()) == {"amount": "number", "expected_close_date": "date"}
    response = move(client, deal, "proposal", dialog="1", amount="8000", expected_close_date="")
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#modal-body"
    assert "必须填写预计成交日期" in response.content.decode() or "预计成交日期" in str(
        response.context["form"].errors["expected_close_date"]
    )
    deal.refresh_from_db()
    assert (deal.stage.key, deal.amount, deal.expected_close_date) == (
        "qualification",
        Decimal("0"),
        None,
    )
    assert history(deal) == ["qualification"]


def test_it_saves_the_filled_fields_and_moves_in_one_step(login, rep):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    response = move(
        login(rep),
        deal,
        "proposal",
        dialog="1",
        on_board="1",
        amount="8000",
        expected_close_date="2027-03-20",
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#board"
    assert "data-move-done" in response.content.decode()
    deal.refresh_from_db()
    assert deal.stage.key == "proposal"
    assert deal.amount == Decimal("8000")
    assert deal.expected_close_date == dt.date(2027, 3, 20)
    assert history(deal) == ["qualification", "proposal"]
    assert deal.stage_changes.order_by("at", "id").last().by == rep


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_asks_on_its_own_page_without_htmx(login, rep, language):
    deal = make_deal(owner=rep, expected_close_date=None)
    client = login(rep)
    client.post(reverse("set_language"), {"language": language})
    response = client.post(reverse("deal_move", args=[deal.pk]), {"stage": stage("proposal").pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert inputs(html) == {"expected_close_date": "date"}
    assert not KEYS.search(re.sub(r"<[^>]+>", "", html))
    done = client.post(
        reverse("deal_move", args=[deal.pk]),
        {"stage": stage("proposal").pk, "dialog": "1", "expected_close_date": "2027-03-20"},
    )
    change = deal.stage_changes.order_by("at", "id").last()
    assert done["Location"] == reverse("deal_detail", args=[deal.pk]) + f"?moved={change.pk}"
    deal.refresh_from_db()
    assert (deal.stage.key, deal.expected_close_date) == ("proposal", dt.date(2027, 3, 20))


def test_it_creates_the_account_a_move_names_only_when_the_move_goes_through(login, rep):
    Stage.objects.filter(pk=stage("needs_analysis").pk).update(
        required_fields=["account", "next_follow_up"]
    )
    deal = make_deal(owner=rep)
    client = login(rep)
    asked = move(client, deal, "needs_analysis")
    assert inputs(asked.content.decode()) == {
        "account": "text",
        "next_follow_up": "datetime-local",
    }
    refused = move(client, deal, "needs_analysis", dialog="1", account="青禾科技")
    assert refused.status_code == 422
    assert not Account.objects.filter(name="青禾科技").exists()
    move(
        client,
        deal,
        "needs_analysis",
        dialog="1",
        account="青禾科技",
        next_follow_up="2027-01-04T10:30",
    )
    deal.refresh_from_db()
    assert deal.stage.key == "needs_analysis"
    assert deal.account.name == "青禾科技" and deal.account.owner == rep


# --- Closing -------------------------------------------------------------------------------------


def test_it_confirms_a_won_close_before_recording_it(login, rep):
    deal = make_deal(owner=rep)
    client = login(rep)
    asked = client.get(
        reverse("deal_move", args=[deal.pk]), {"stage": stage("won").pk, "on_board": "1"}, **HX
    )
    assert asked.status_code == 200
    assert "data-modal-open" in asked.content.decode()
    deal.refresh_from_db()
    assert deal.stage.key == "qualification" and deal.closed_at is None
    # A plain drop on won (no answer to the question) records nothing either.
    move(client, deal, "won", on_board="1")
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    done = move(client, deal, "won", on_board="1", dialog="1")
    assert done.status_code == 200
    deal.refresh_from_db()
    assert deal.stage.key == "won" and deal.closed_at is not None
    assert history(deal) == ["qualification", "won"]


def test_it_answers_a_lost_close_from_the_board_with_the_board_and_an_undo(login, rep):
    deal = make_deal(owner=rep)
    client = login(rep)
    form = client.get(reverse("deal_lost", args=[deal.pk]), {"on_board": "1"}, **HX)
    assert 'name="on_board"' in form.content.decode()
    assert 'name="lost_reason"' in form.content.decode()
    refused = client.post(reverse("deal_lost", args=[deal.pk]), {"on_board": "1"}, **HX)
    assert refused.status_code == 422
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    done = client.post(
        reverse("deal_lost", args=[deal.pk]),
        {"on_board": "1", "lost_reason": lost_reason().pk},
        **HX,
    )
    assert done.status_code == 200 and done["HX-Retarget"] == "#board"
    assert done.context["moved"].to_stage.key == "lost"
    assert "undo-move" in done.content.decode()


# --- A moved card stays in sight -----------------------------------------------------------------


def test_it_keeps_a_moved_card_in_sight_in_a_full_column(login, rep):
    for i in range(CARDS + 2):
        filler = make_deal(owner=rep, name=f"已在方案{i}")
        services.deal_move(deal=filler, stage=stage("proposal"))
    deal = make_deal(owner=rep, name="刚拖过来")
    response = move(login(rep), deal, "proposal", on_board="1")
    column = {c["stage"].key: c for c in response.context["columns"]}["proposal"]
    assert deal.pk in [d.pk for d in column["cards"]]
    assert column["count"] == CARDS + 3
    assert column["more"] == column["count"] - len(column["cards"])
    assert "just-moved" in response.content.decode()


# --- Undo ----------------------------------------------------------------------------------------


def test_it_undoes_the_last_move_as_a_move_back_and_keeps_the_history(login, rep):
    deal = make_deal(owner=rep)
    client = login(rep)
    moved = move(client, deal, "needs_analysis", on_board="1")
    change = moved.context["moved"]
    assert f'name="change" value="{change.pk}"' in moved.content.decode()
    response = client.post(
        reverse("deal_undo_move", args=[deal.pk]), {"change": change.pk, "on_board": "1"}, **HX
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    assert history(deal) == ["qualification", "needs_analysis", "qualification"]
    assert StageChange.objects.filter(pk=change.pk).exists()
    assert deal.stage_changes.order_by("at", "id").last().by == rep


def test_it_refuses_to_undo_a_move_that_is_not_the_latest(login, rep):
    deal = make_deal(owner=rep)
    client = login(rep)
    first = move(client, deal, "needs_analysis", on_board="1").context["moved"]
    move(client, deal, "proposal", on_board="1")
    response = client.post(
        reverse("deal_undo_move", args=[deal.pk]), {"change": first.pk, "on_board": "1"}, **HX
    )
    assert response.status_code == 422
    assert "board-error" in response.content.decode()
    deal.refresh_from_db()
    assert history(deal) == ["qualification", "needs_analysis", "proposal"]


def test_it_offers_the_undo_on_the_deal_page_to_whoever_moved(login, rep, manager):
    deal = make_deal(owner=rep)
    client = login(rep)
    done = client.post(reverse("deal_move", args=[deal.pk]), {"stage": stage("needs_analysis").pk})
    page = client.get(done["Location"]).content.decode()
    assert "undo-move" in page
    assert "undo-move" not in login(manager).get(done["Location"]).content.decode()
    change = deal.stage_changes.order_by("at", "id").last()
    client = login(rep)
    back = client.post(reverse("deal_undo_move", args=[deal.pk]), {"change": change.pk})
    assert back["Location"] == reverse("deal_detail", args=[deal.pk])
    deal.refresh_from_db()
    assert history(deal) == ["qualification", "needs_analysis", "qualification"]


# --- Who may -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["deal_move", "deal_undo_move"])
def test_it_hides_another_reps_deal_from_moves_and_undos(login, rep, teammate, route):
    """A rep's deals are seen only by those who may change them (crm.policy), so a teammate's
    deal answers 404, and nothing is written."""
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("needs_analysis"), by=rep)
    change = deal.stage_changes.order_by("at", "id").last()
    data = {"stage": stage("proposal").pk, "change": change.pk, "on_board": "1", "dialog": "1"}
    response = login(teammate).post(reverse(route, args=[deal.pk]), data, **HX)
    assert response.status_code == 404
    deal.refresh_from_db()
    assert history(deal) == ["qualification", "needs_analysis"]


def test_it_lets_the_owners_manager_undo_a_move(login, rep, manager):
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("needs_analysis"), by=rep)
    change = deal.stage_changes.order_by("at", "id").last()
    response = login(manager).post(
        reverse("deal_undo_move", args=[deal.pk]), {"change": change.pk, "on_board": "1"}, **HX
    )
    assert response.status_code == 200
    assert history(Deal.objects.get(pk=deal.pk))[-1] == "qualification"


@pytest.mark.parametrize("route", ["deal_move", "deal_undo_move"])
def test_it_refuses_a_move_or_undo_without_the_csrf_token(rep, route):
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("needs_analysis"), by=rep)
    change = deal.stage_changes.order_by("at", "id").last()
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    data = {"stage": stage("proposal").pk, "change": change.pk, "dialog": "1"}
    response = client.post(reverse(route, args=[deal.pk]), data)
    assert response.status_code == 403
    deal.refresh_from_db()
    assert history(deal) == ["qualification", "needs_analysis"]
    # With the token the same request goes through.
    client.get(reverse("deal_detail", args=[deal.pk]))
    token = client.cookies["csrftoken"].value
    ok = client.post(reverse(route, args=[deal.pk]), data | {"csrfmiddlewaretoken": token})
    assert ok.status_code == 302
    deal.refresh_from_db()
    assert history(deal)[-1] == ("proposal" if route == "deal_move" else "qualification")


# --- What the board and the deal page show -------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_shows_display_names_percentages_and_no_stage_keys(login, rep, language):
    rep.display_name = "李娜"
    rep.save()
    deal = make_deal(owner=rep, name="云帆 ERP")
    client = login(rep)
    client.post(reverse("set_language"), {"language": language})
    for url in (reverse("deal_board"), reverse("deal_detail", args=[deal.pk])):
        html = client.get(url).content.decode()
        text = re.sub(r"<[^>]+>", " ", html)
        assert "李娜" in text
        assert "alice" not in text
        assert "10%" in text  # qualification's probability, as a percentage
        assert "0.1" not in text
        assert not KEYS.search(text), url


def test_it_answers_the_deal_pages_move_to_lost_with_the_lost_form_in_the_modal(login, rep):
    deal = make_deal(owner=rep)
    client = login(rep)
    asked = move(client, deal, "lost")
    assert asked.status_code == 200
    assert asked["HX-Retarget"] == "#modal-body"
    html = asked.content.decode()
    assert 'class="lost-form"' in html and "data-modal-open" in html
    assert 'name="on_board"' not in html
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    done = client.post(
        reverse("deal_lost", args=[deal.pk]),
        {"lost_reason": lost_reason().pk, "next": reverse("deal_detail", args=[deal.pk])},
        **HX,
    )
    change = deal.stage_changes.order_by("at", "id").last()
    assert done["HX-Redirect"] == reverse("deal_detail", args=[deal.pk]) + f"?moved={change.pk}"
    assert "undo-move" in client.get(done["HX-Redirect"]).content.decode()


def test_it_sends_a_lost_close_only_to_a_path_on_this_site(login, rep):
    deal = make_deal(owner=rep)
    done = login(rep).post(
        reverse("deal_lost", args=[deal.pk]),
        {"lost_reason": lost_reason().pk, "next": "https://evil.example/"},
        **HX,
    )
    assert done["HX-Redirect"] == reverse("deal_board")
