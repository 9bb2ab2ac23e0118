"""services.deal_move_with_fields and services.deal_undo_move: all or nothing, and an undo is a
move back that the history keeps."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from leakmap.crm import services
from leakmap.crm.models import Deal, Pipeline, Stage, StageChange
from tests.factories import lost_reason, make_deal, stage


def history(deal: Deal) -> list[str]:
    return list(deal.stage_changes.order_by("at", "id").values_list("to_stage__key", flat=True))


def test_it_fills_the_required_fields_and_moves(rep):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    services.deal_move_with_fields(
        deal=deal,
        stage=stage("proposal"),
        values={"amount": Decimal("500"), "expected_close_date": dt.date(2027, 3, 20)},
        by=rep,
    )
    deal.refresh_from_db()
    assert (deal.stage.key, deal.amount, deal.expected_close_date) == (
        "proposal",
        Decimal("500"),
        dt.date(2027, 3, 20),
    )
    assert history(deal) == ["qualification", "proposal"]


def test_it_saves_nothing_when_the_move_is_refused(rep, db):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    # Still missing the date: refused, and the amount is not kept either.
    with pytest.raises(ValidationError) as refused:
        services.deal_move_with_fields(
            deal=deal, stage=stage("proposal"), values={"amount": Decimal("500")}, by=rep
        )
    assert "expected_close_date" in refused.value.message_dict
    # A stage of another pipeline: refused after the values were set, and rolled back.
    other = Pipeline.objects.create(name="渠道")
    foreign = Stage.objects.create(
        pipeline=other, key="x", label_zh="甲", label_en="X", order=1, probability=10
    )
    with pytest.raises(ValidationError):
        services.deal_move_with_fields(
            deal=deal, stage=foreign, values={"amount": Decimal("700")}, by=rep
        )
    deal.refresh_from_db()
    assert (deal.stage.key, deal.amount, deal.expected_close_date) == (
        "qualification",
        Decimal("0"),
        None,
    )
    assert history(deal) == ["qualification"]


def test_it_refuses_an_empty_value_or_a_field_no_stage_can_require(rep):
    deal = make_deal(owner=rep, amount=0)
    for values in ({"amount": Decimal("0")}, {"name": "改名"}):
        with pytest.raises(ValidationError):
            services.deal_move_with_fields(
                deal=deal, stage=stage("needs_analysis"), values=values, by=rep
            )
    deal.refresh_from_db()
    assert deal.name == "Deal" and history(deal) == ["qualification"]


def test_it_undoes_the_latest_move_as_a_new_move(rep):
    deal = make_deal(owner=rep)
    services.deal_close_won(deal=deal, by=rep)
    won = deal.stage_changes.order_by("at", "id").last()
    services.deal_undo_move(deal=deal, change=won, by=rep)
    deal.refresh_from_db()
    assert deal.stage.key == "qualification" and deal.closed_at is None
    assert history(deal) == ["qualification", "won", "qualification"]
    assert StageChange.objects.filter(pk=won.pk).exists()


def test_it_refuses_to_undo_anything_but_the_latest_move(rep):
    deal = make_deal(owner=rep)
    first = deal.stage_changes.get()
    with pytest.raises(ValidationError):
        services.deal_undo_move(deal=deal, change=first, by=rep)  # the creation, not a move
    services.deal_move(deal=deal, stage=stage("needs_analysis"), by=rep)
    older = deal.stage_changes.order_by("at", "id").last()
    services.deal_move(deal=deal, stage=stage("proposal"), by=rep)
    with pytest.raises(ValidationError):
        services.deal_undo_move(deal=deal, change=older, by=rep)
    assert history(Deal.objects.get(pk=deal.pk)) == ["qualification", "needs_analysis", "proposal"]


def test_an_undo_back_to_lost_needs_the_reason_again(rep):
    deal = make_deal(owner=rep)
    services.deal_close_lost(deal=deal, lost_reason=lost_reason(), by=rep)
    services.deal_move(deal=deal, stage=stage("negotiation"), by=rep)
    reopened = deal.stage_changes.order_by("at", "id").last()
    with pytest.raises(ValidationError) as refused:
        services.deal_undo_move(deal=deal, change=reopened, by=rep)
    assert "lost_reason" in refused.value.message_dict
