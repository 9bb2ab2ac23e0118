"""The funnel's median days to reach each step: the whole company now reads the reaches the
database keeps sorted (StageChange.reach_seconds / reach_hours and the stage_reach_sorted index);
any other scope sorts its own. Both must give the same figures, so these tests run both on the
same data, and hold the kept fact equal to its definition after every kind of write."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics.base import load_stages, whole_company_now
from leakmap.analytics.distributions import medians_by_sorting, medians_from_sorted_reach
from leakmap.analytics.filters import ReportFilters, Scope, resolve
from leakmap.analytics.funnel import funnel_rows
from leakmap.crm import services
from leakmap.crm.models import Deal, Lead, ReachTally, Stage, StageChange
from tests.analytics.journeys import day, deal
from tests.analytics.test_diagnosis_paths import owner_narrowings
from tests.analytics.test_properties import SETTINGS, random_company
from tests.factories import LeadFactory


def scope_at(now, **filters) -> Scope:
    """A scope evaluated "now" at a fixed moment, as if the report ran then without --as-of."""
    return dataclasses.replace(resolve(ReportFilters(**filters)), now=now)


def both_ways(scope: Scope) -> tuple[dict, dict]:
    stages = load_stages()
    counts = [r.count for r in funnel_rows(scope, stages, with_medians=False)[2:-1]]
    return medians_from_sorted_reach(stages, counts), medians_by_sorting(scope, stages)


def reaches() -> list[tuple[int, int | None]]:
    return list(StageChange.objects.order_by("pk").values_list("pk", "reach_seconds"))


def test_an_entry_keeps_the_seconds_from_creation_when_it_reaches_further(rep):
    j = (
        deal(owner=rep, created=day(0))
        .enters("proposal", day(2, hours=3))
        .enters("needs_analysis", day(4))  # back: reaches nothing new
        .enters("negotiation", day(5))
        .lost(day(6))  # lost reaches nothing
    )
    entries = list(
        StageChange.objects.filter(deal=j.deal)
        .order_by("at", "id")
        .values_list("to_stage__key", "reach_seconds", "reach_hours")
    )
    assert entries == [
        ("qualification", 0, 0),
        ("proposal", 2 * 86400 + 3 * 3600, 51),
        ("needs_analysis", None, None),
        ("negotiation", 5 * 86400, 120),
        ("lost", None, None),
    ]
    # The services' incremental values are what a recomputation from the record gives.
    kept = reaches()
    services.stage_entries_refresh_facts()
    assert reaches() == kept


def test_a_new_creation_time_moves_the_reaches(rep):
    j = deal(owner=rep, created=day(1)).enters("proposal", day(3))
    services.deal_update(deal=Deal.objects.get(pk=j.deal.pk), created_at=day(0))
    proposal = StageChange.objects.get(deal=j.deal, to_stage__key="proposal")
    assert proposal.reach_seconds == 3 * 86400


def test_a_stage_reorder_keeps_the_reaches_equal_to_a_recomputation(rep):
    deal(owner=rep, created=day(0)).enters("proposal", day(2)).enters("needs_analysis", day(3))
    deal(owner=rep, created=day(0)).enters("needs_analysis", day(1)).enters("proposal", day(4))
    services.stage_reorder(
        stage=Stage.objects.get(pipeline__is_default=True, key="proposal"), direction="up"
    )
    kept = reaches()
    services.stage_entries_refresh_facts()
    assert reaches() == kept
    # needs_analysis now comes after proposal: both deals' entries into it reach further, and
    # the second deal's later move to proposal (now a step back) reaches nothing.
    moved = StageChange.objects.filter(to_stage__key="needs_analysis").order_by("at")
    assert [e.reach_seconds for e in moved] == [86400, 3 * 86400]
    assert [
        e.reach_seconds for e in StageChange.objects.filter(to_stage__key="proposal").order_by("at")
    ] == [2 * 86400, None]


def test_only_the_whole_company_now_reads_the_sorted_reaches(company, rep):
    late = day(40)
    assert whole_company_now(scope_at(late))
    assert not whole_company_now(scope_at(late, owner="alice"))
    assert not whole_company_now(resolve(ReportFilters(as_of=late)))


def test_both_ways_agree_on_the_hand_worked_company(company):
    sorted_reach, by_sorting = both_ways(scope_at(day(30)))
    assert sorted_reach == by_sorting
    stages = load_stages()
    by_key = {s.key: sorted_reach[i] for i, s in enumerate(stages.open)}
    # needs_analysis: D1 3, D2 1, D3 2, D5 20, D6 0 (no history) → 2
    assert by_key["needs_analysis"] == 2.0
    # verbal, skipped by all: D2 won d11 (10 days), D3 won d4 (4), D5 won d20 → 10; D1 never
    assert by_key["verbal"] == 10.0


def test_the_funnel_adds_up_cents_exactly(rep):
    # Amounts a float sum could round differently if it were added up in another order.
    for cents, key in ((10, "proposal"), (20, "negotiation"), (123457, "verbal"), (1, None)):
        j = deal(owner=rep, created=day(0), amount=Decimal(cents) / 100)
        if key:
            j.enters(key, day(1))
    stages = load_stages()
    for scope in (scope_at(day(30)), resolve(ReportFilters(as_of=day(30)))):
        rows = funnel_rows(scope, stages, with_medians=False)
        assert rows[1].amount == Decimal("1234.88")
        # The third open step: the three deals moved into it or past it, not the 0.01 one.
        assert rows[4].amount == Decimal("1234.87")


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_histories(db, seed):
    with random_company(seed):
        # day(90) is after every generated event, so the sorted reaches always serve it.
        assert whole_company_now(scope_at(day(90)))
        sorted_reach, by_sorting = both_ways(scope_at(day(90)))
        assert sorted_reach == by_sorting
        LeadFactory(owner=None, created_at=day(1))
        for narrowed in owner_narrowings():
            scope = resolve(ReportFilters(**narrowed))
            leads = Lead.objects.filter(scope.lead_q()).count()
            assert funnel_rows(scope, load_stages(), with_medians=False)[0].count == leads
        kept = reaches()
        services.stage_entries_refresh_facts()
        assert reaches() == kept


@pytest.mark.parametrize("given_creation_times", [True, False])
def test_an_imported_history_keeps_the_reaches_the_database_computes(
    rep, monkeypatch, given_creation_times
):
    """bulk.stage_history_replace computes whole-second reaches itself and leaves times with
    fractions to SQL (SQLite reads them to the millisecond): either way, a recomputation
    changes nothing. One deal per chunk, so that state carried from chunk to chunk shows."""
    from leakmap.crm import bulk

    monkeypatch.setattr(bulk, "HISTORY_CHUNK", 1)

    stage = {s.key: s.pk for s in Stage.objects.filter(pipeline__is_default=True)}
    whole = deal(owner=rep, created=day(0)).deal
    fraction = deal(owner=rep, created=day(0) + dt.timedelta(microseconds=488_283)).deal
    bulk.stage_history_replace(
        {
            whole.pk: [(stage["qualification"], day(0)), (stage["proposal"], day(2, hours=5))],
            fraction.pk: [
                (stage["qualification"], fraction.created_at),
                (stage["proposal"], day(3) + dt.timedelta(microseconds=988_178)),
            ],
        },
        {whole.pk: whole.created_at, fraction.pk: fraction.created_at}
        if given_creation_times
        else None,
    )
    services.deal_move(
        deal=Deal.objects.get(pk=whole.pk),
        stage=Stage.objects.get(pk=stage["negotiation"]),
        at=day(6),
    )
    kept = reaches()
    # 3 days 0.499895 s exactly; SQLite, reading .488 and .988, makes it 0.5 and rounds up.
    fraction_reach = 3 * 86400 + (1 if connection.vendor == "sqlite" else 0)
    assert [r for _pk, r in kept] == [0, 2 * 86400 + 5 * 3600, 0, fraction_reach, 6 * 86400]
    services.stage_entries_refresh_facts()
    assert reaches() == kept


def test_the_reaches_of_deleted_deals_are_gone_from_both_ways(rep):
    """A deleted deal's reaches leave their ReachTally groups, some with none left (n = 0):
    the sorted reaches must read as if they had never been."""
    deal(owner=rep, created=day(0)).enters("proposal", day(3)).enters("negotiation", day(4))
    deal(owner=rep, created=day(0)).enters("verbal", day(6))
    gone = deal(owner=rep, created=day(0)).enters("proposal", day(1, hours=5))
    gone.enters("negotiation", day(2)).won(day(2, hours=7))
    services.deal_delete(deal=gone.deal)
    assert ReachTally.objects.filter(n=0).exists()
    sorted_reach, by_sorting = both_ways(scope_at(day(10)))
    assert sorted_reach == by_sorting
    stages = load_stages()
    by_key = {s.key: sorted_reach[i] for i, s in enumerate(stages.open)}
    assert by_key["proposal"] == 4.5  # 3 and 6 days
