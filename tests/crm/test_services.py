from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from leakmap.crm import events, services
from leakmap.crm.models import Activity, Deal, Lead, LeadStatus, StageChange
from tests.factories import T0, CompetitorFactory, LeadFactory, days, lost_reason, make_deal, stage


@pytest.fixture
def lead(rep):
    return LeadFactory(owner=rep, budget=Decimal("50000"), product="ERP")


def test_it_converts_a_lead_into_account_contact_and_deal_in_one_step(lead, rep):
    deal = services.lead_convert(lead=lead, by=rep, at=T0 + days(2))

    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert lead.converted_at == T0 + days(2)
    assert deal.account.name == lead.company
    assert deal.contact.name == lead.name
    assert deal.contact.account == deal.account
    assert deal.source == lead.source
    assert deal.owner == rep
    assert deal.amount == Decimal("50000")
    assert deal.stage.key == "qualification"
    assert list(deal.stage_changes.values_list("to_stage__key", flat=True)) == ["qualification"]


def test_it_refuses_to_convert_a_lead_twice(lead, rep):
    services.lead_convert(lead=lead, by=rep, at=T0 + days(1))
    with pytest.raises(ValidationError) as err:
        services.lead_convert(lead=lead, by=rep, at=T0 + days(2))
    assert "status" in err.value.message_dict
    assert Deal.objects.count() == 1


def test_it_refuses_a_conversion_before_the_lead_existed(lead, rep):
    with pytest.raises(ValidationError):
        services.lead_convert(lead=lead, by=rep, at=T0 - days(1))
    assert Deal.objects.count() == 0
    lead.refresh_from_db()
    assert lead.status == LeadStatus.NEW


def test_it_records_every_move_and_keeps_the_reached_stage(rep):
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("proposal"), by=rep, at=T0 + days(3))
    services.deal_move(deal=deal, stage=stage("needs_analysis"), by=rep, at=T0 + days(4))
    deal.refresh_from_db()

    assert deal.stage.key == "needs_analysis"
    assert deal.reached_order == stage("proposal").order  # moving back does not un-reach
    assert deal.stage_entered_at == T0 + days(4)
    changes = list(deal.stage_changes.values_list("from_stage__key", "to_stage__key"))
    assert changes == [
        (None, "qualification"),
        ("qualification", "proposal"),
        ("proposal", "needs_analysis"),
    ]


def test_it_sets_closed_at_when_won_and_clears_it_when_reopened(rep):
    deal = make_deal(owner=rep)
    services.deal_close_won(deal=deal, by=rep, at=T0 + days(10))
    deal.refresh_from_db()
    assert deal.closed_at == T0 + days(10)
    assert deal.reached_order == stage("won").order

    services.deal_move(deal=deal, stage=stage("negotiation"), by=rep, at=T0 + days(11))
    deal.refresh_from_db()
    assert deal.closed_at is None
    assert deal.stage.key == "negotiation"
    assert StageChange.objects.filter(deal=deal).count() == 3


def test_it_requires_a_lost_reason(rep):
    deal = make_deal(owner=rep)
    with pytest.raises(ValidationError) as err:
        services.deal_close_lost(deal=deal, lost_reason=None, by=rep, at=T0 + days(1))
    assert "lost_reason" in err.value.message_dict
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    assert deal.closed_at is None
    assert StageChange.objects.filter(deal=deal).count() == 1


def test_it_requires_the_competitor_when_lost_to_one(rep):
    deal = make_deal(owner=rep)
    reason = lost_reason("被竞争对手拿下")
    with pytest.raises(ValidationError) as err:
        services.deal_close_lost(deal=deal, lost_reason=reason, by=rep, at=T0 + days(1))
    assert "competitor" in err.value.message_dict

    rival = CompetitorFactory(name="竞品A")
    services.deal_close_lost(
        deal=deal, lost_reason=reason, competitor=rival, by=rep, at=T0 + days(1)
    )
    deal.refresh_from_db()
    assert deal.competitor == rival
    assert deal.lost_at_stage.key == "qualification"
    assert deal.closed_at == T0 + days(1)


def test_it_records_the_stage_a_deal_was_lost_at(rep):
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("negotiation"), by=rep, at=T0 + days(5))
    services.deal_close_lost(deal=deal, lost_reason=lost_reason(), by=rep, at=T0 + days(9))
    deal.refresh_from_db()
    assert deal.lost_at_stage.key == "negotiation"
    assert deal.reached_order == stage("negotiation").order


def test_it_refuses_a_move_that_comes_before_the_last_one(rep):
    deal = make_deal(owner=rep)
    services.deal_move(deal=deal, stage=stage("proposal"), by=rep, at=T0 + days(5))
    with pytest.raises(ValidationError) as err:
        services.deal_move(deal=deal, stage=stage("negotiation"), by=rep, at=T0 + days(4))
    assert "at" in err.value.message_dict


def test_it_refuses_entering_proposal_without_amount_and_close_date(rep):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    with pytest.raises(ValidationError) as err:
        services.deal_move(deal=deal, stage=stage("proposal"), by=rep, at=T0 + days(1))
    assert set(err.value.message_dict) == {"amount", "expected_close_date"}
    # Skipping over proposal does not skip its requirements.
    with pytest.raises(ValidationError):
        services.deal_move(deal=deal, stage=stage("negotiation"), by=rep, at=T0 + days(1))
    # Losing it needs only a reason.
    services.deal_close_lost(deal=deal, lost_reason=lost_reason(), by=rep, at=T0 + days(1))


def test_it_counts_follow_ups_and_first_contact(rep, lead):
    deal = services.lead_convert(lead=lead, by=rep, at=T0 + days(1))
    services.activity_log(
        services.ActivityInput(owner=rep, kind="call", deal=deal, done_at=T0 + days(2))
    )
    services.activity_log(
        services.ActivityInput(owner=rep, kind="task", deal=deal, due_at=T0 + days(9))
    )  # not done
    services.activity_log(
        services.ActivityInput(owner=rep, kind="email", deal=deal, done_at=T0 + days(4))
    )
    deal.refresh_from_db()
    lead.refresh_from_db()
    assert deal.follow_up_count == 2
    assert deal.last_follow_up_at == T0 + days(4)
    assert lead.first_contacted_at == T0 + days(2)


def test_it_marks_a_new_lead_contacted_on_its_first_follow_up(rep):
    lead = LeadFactory(owner=rep)
    services.activity_log(
        services.ActivityInput(
            owner=rep, kind="call", lead=lead, done_at=T0 + dt.timedelta(hours=3)
        )
    )
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONTACTED
    assert lead.first_contacted_at == T0 + dt.timedelta(hours=3)


def test_it_rejects_an_activity_without_a_deal_or_lead(rep):
    with pytest.raises(ValidationError):
        services.activity_log(services.ActivityInput(owner=rep, kind="call"))
    assert Activity.objects.count() == 0


def test_refreshing_facts_in_bulk_gives_what_the_services_kept(rep, teammate):
    a = make_deal(owner=rep)
    services.deal_move(deal=a, stage=stage("negotiation"), by=rep, at=T0 + days(5))
    services.deal_close_lost(deal=a, lost_reason=lost_reason(), by=rep, at=T0 + days(8))
    services.activity_log(
        services.ActivityInput(owner=rep, kind="call", deal=a, done_at=T0 + days(6))
    )
    b = make_deal(owner=teammate)
    services.deal_close_won(deal=b, by=teammate, at=T0 + days(3))
    kept = {
        d.pk: (
            d.reached_order,
            d.lost_at_stage_id,
            d.stage_entered_at,
            d.last_follow_up_at,
            d.follow_up_count,
        )
        for d in Deal.objects.all()
    }
    Deal.objects.update(
        reached_order=0, lost_at_stage=None, follow_up_count=0, last_follow_up_at=None
    )

    assert services.deals_refresh_facts() == 2
    refreshed = {
        d.pk: (
            d.reached_order,
            d.lost_at_stage_id,
            d.stage_entered_at,
            d.last_follow_up_at,
            d.follow_up_count,
        )
        for d in Deal.objects.all()
    }
    assert refreshed == kept


def test_a_deal_without_history_counts_from_its_created_at(rep):
    deal = make_deal(owner=rep, stage_key="proposal")
    StageChange.objects.filter(deal=deal).delete()
    Deal.objects.filter(pk=deal.pk).update(reached_order=0, stage_entered_at=None)
    services.deals_refresh_facts([deal.pk])
    deal.refresh_from_db()
    assert deal.reached_order == stage("proposal").order
    assert deal.stage_entered_at == deal.created_at


def test_events_fire_only_after_commit(rep, django_capture_on_commit_callbacks):
    received = []

    def on_won(sender, deal, **kwargs):
        received.append(deal.pk)

    events.deal_won.connect(on_won)
    try:
        deal = make_deal(owner=rep)
        with django_capture_on_commit_callbacks(execute=True):
            services.deal_close_won(deal=deal, by=rep, at=T0 + days(1))
    finally:
        events.deal_won.disconnect(on_won)
    assert received == [deal.pk]


def test_a_disqualified_lead_needs_a_reason_and_cannot_convert(rep):
    lead = LeadFactory(owner=rep)
    with pytest.raises(ValidationError):
        services.lead_disqualify(lead=lead, reason=" ")
    services.lead_disqualify(lead=lead, reason="空号")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.DISQUALIFIED
    with pytest.raises(ValidationError):
        services.lead_convert(lead=lead, by=rep)
    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.DISQUALIFIED


def test_a_stage_reorder_leaves_the_facts_a_full_recomputation_gives(rep):
    """stage_reorder recomputes only the deals and history entries a swap can move; after each
    of a series of swaps, recomputing everything must change nothing. Random histories with
    skipped and reversed stages, closes, and deals without history."""
    import random

    from leakmap.crm.models import Stage

    rng = random.Random(7)
    keys = ["qualification", "needs_analysis", "proposal", "proposal_review", "negotiation"]
    reason = lost_reason()
    for n in range(30):
        at = T0 + days(n)
        deal = make_deal(owner=rep, created_at=at, stage_key=rng.choice(keys[:2]))
        for _ in range(rng.randint(0, 4)):
            at += days(1)
            target = rng.choice([*keys, "won", "lost"])
            try:
                if target == "lost":
                    services.deal_close_lost(deal=deal, lost_reason=reason, at=at)
                    break
                if target == "won":
                    services.deal_close_won(deal=deal, at=at)
                    break
                services.deal_move(deal=deal, stage=stage(target), at=at)
            except ValidationError:
                continue  # a stage's required fields, or already there
        if n % 10 == 0:  # a deal known only by its current stage
            StageChange.objects.filter(deal=deal).delete()
            services.deals_refresh_facts([deal.pk])

    def facts():
        return (
            list(
                Deal.objects.order_by("pk").values_list(
                    "pk", "reached_order", "lost_at_stage_id", "stage_entered_at"
                )
            ),
            list(StageChange.objects.order_by("pk").values_list("pk", "left_at", "reached_before")),
        )

    moves = [(rng.choice(keys), rng.choice(["up", "down"])) for _ in range(10)]
    moves += [("qualification", "down"), ("needs_analysis", "up")]  # the first stage changes
    for key, direction in moves:
        try:
            services.stage_reorder(
                stage=Stage.objects.get(pipeline__is_default=True, key=key), direction=direction
            )
        except ValidationError:
            continue  # already at that end
        kept = facts()
        services.deals_refresh_stage_facts()
        services.stage_entries_refresh_facts()
        assert facts() == kept, (key, direction)


def test_moving_a_deal_without_history_records_the_entry_it_was_counted_with(rep, tmp_path):
    """An imported deal without history counts as having entered its stage at created_at; the
    first move writes that entry down, so the history explains the facts and a reorder's
    recomputation keeps them (it used to drop the stages the deal had been credited with)."""
    from leakmap.crm.models import Stage

    deal = make_deal(owner=rep, stage_key="proposal_review")
    StageChange.objects.filter(deal=deal).delete()
    services.deals_refresh_facts([deal.pk])
    deal.refresh_from_db()
    assert deal.reached_order == stage("proposal_review").order
    services.deal_move(deal=deal, stage=stage("qualification"), at=T0 + days(3))
    history = list(deal.stage_changes.order_by("at", "id").values_list("to_stage__key", "at"))
    assert history == [("proposal_review", T0), ("qualification", T0 + days(3))]
    kept = Deal.objects.filter(pk=deal.pk).values_list("reached_order", "stage_entered_at").get()
    assert kept == (stage("proposal_review").order, T0 + days(3))
    services.stage_reorder(
        stage=Stage.objects.get(pipeline__is_default=True, key="negotiation"), direction="up"
    )
    services.deals_refresh_stage_facts()
    services.stage_entries_refresh_facts()
    deal.refresh_from_db()
    assert deal.reached_order == stage("proposal_review").order  # still counted as reached
