"""The cycle report (and the funnel's won step) over every won deal now read Deal.cycle_seconds
from indexes kept in order; any other scope sorts. Both must give the same figures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics.base import load_stages, won_cycle_stats
from leakmap.analytics.distributions import stats_by_sorting, stats_from_sorted_cycles
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm.models import Deal
from tests.analytics.journeys import day, deal
from tests.analytics.test_properties import SETTINGS, random_company


def both_ways():
    stages = load_stages()
    return stats_from_sorted_cycles(stages), stats_by_sorting(resolve(ReportFilters()), stages)


def test_the_database_keeps_each_deals_cycle(rep):
    j = deal(owner=rep, created=day(0)).enters("proposal", day(2))
    assert Deal.objects.get(pk=j.deal.pk).cycle_seconds is None  # open
    j.won(day(5, hours=6))
    assert Deal.objects.get(pk=j.deal.pk).cycle_seconds == 5 * 86400 + 6 * 3600
    j.enters("negotiation", day(6))  # reopened: open again
    assert Deal.objects.get(pk=j.deal.pk).cycle_seconds is None


def test_both_ways_agree_on_the_hand_worked_company(company):
    sorted_cycles, by_sorting = both_ways()
    assert sorted_cycles == by_sorting
    overall = sorted_cycles[1]
    # won now: D2 (created d1, won d11: 10 days) and D5 (d0 → d20: 20 days)
    assert (overall.n, overall.mean, overall.median, overall.p90) == (2, 15.0, 15.0, 20.0)


def test_there_is_nothing_to_say_without_won_deals(rep):
    deal(owner=rep, created=day(0)).enters("proposal", day(2))
    assert both_ways()[0] == ({}, None) and won_cycle_stats(load_stages()) is None


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_histories(db, seed):
    with random_company(seed, max_deals=40):
        sorted_cycles, by_sorting = both_ways()
        assert sorted_cycles == by_sorting
