"""Property: whatever sequence of moves, closes and reopenings reaches the services, the record
stays explainable — the history's newest entry is the current stage, closed deals have
closed_at, lost deals have a reason, and the facts equal a recomputation from the history."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakmap.crm import services
from leakmap.crm.models import Deal, Stage, StageKind
from tests.factories import T0, CompetitorFactory, UserFactory, lost_reason, make_deal

STAGE_KEYS = [
    "qualification",
    "needs_analysis",
    "proposal",
    "proposal_review",
    "negotiation",
    "verbal",
    "won",
    "lost",
]

step = st.tuples(
    st.sampled_from(STAGE_KEYS),
    st.integers(min_value=-2, max_value=72),  # hours after the previous step (negative: too early)
    st.sampled_from(["价格过高", "被竞争对手拿下", None]),
    st.booleans(),  # with competitor
)


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, max_size=12))
def test_history_always_explains_the_deal(steps):
    owner = UserFactory(username="prop-owner")
    rival = CompetitorFactory(name="竞品X")
    deal = make_deal(owner=owner, amount=5000, created_at=T0)
    at = T0
    for key, hours, reason_name, with_rival in steps:
        at = at + dt.timedelta(hours=hours)
        target = Stage.objects.get(pipeline=deal.pipeline, key=key)
        try:
            services.deal_move(
                deal=deal,
                stage=target,
                by=owner,
                at=at,
                lost_reason=lost_reason(reason_name) if reason_name else None,
                competitor=rival if with_rival else None,
            )
        except ValidationError:
            pass  # refused moves must leave no trace, checked below

        deal = Deal.objects.get(pk=deal.pk)
        history = list(deal.stage_changes.order_by("at", "id"))
        assert history[-1].to_stage_id == deal.stage_id
        assert all(a.at <= b.at for a, b in zip(history, history[1:], strict=False))
        assert all(
            b.from_stage_id == a.to_stage_id for a, b in zip(history, history[1:], strict=False)
        )
        if deal.stage.kind == StageKind.OPEN:
            assert deal.closed_at is None
        else:
            assert deal.closed_at == history[-1].at
        if deal.stage.kind == StageKind.LOST:
            assert deal.lost_reason is not None
            if deal.lost_reason.requires_competitor:
                assert deal.competitor is not None
        at = max(at, history[-1].at)

    kept = (deal.reached_order, deal.lost_at_stage_id, deal.stage_entered_at)
    entries = list(deal.stage_changes.order_by("at", "id").values_list("left_at", "reached_before"))
    services.deals_refresh_facts([deal.pk])
    services.stage_entries_refresh_facts([deal.pk])
    deal.refresh_from_db()
    assert (deal.reached_order, deal.lost_at_stage_id, deal.stage_entered_at) == kept
    # The per-entry facts deal_move kept are those the SQL recomputation gives.
    assert entries == list(
        deal.stage_changes.order_by("at", "id").values_list("left_at", "reached_before")
    )
    ats = list(deal.stage_changes.order_by("at", "id").values_list("at", flat=True))
    assert [left for left, _ in entries] == [*ats[1:], None]
