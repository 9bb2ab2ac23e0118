"""The owners report of every deal now adds up (owner, stage, reached order) groups read from an
index in order; any other scope takes one filtered pass. Both must give the same figures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics.base import load_stages, money
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.analytics.owners import groups_by_filters, groups_of_every_deal
from tests.analytics.test_properties import SETTINGS, random_company


def both_ways() -> tuple[list[dict], list[dict]]:
    stages = load_stages()

    def plain(groups):
        return sorted(({**g, "won_amount": money(g["won_amount"])} for g in groups), key=str)

    return (
        plain(groups_by_filters(resolve(ReportFilters()), stages)),
        plain(groups_of_every_deal(stages)),
    )


def test_both_ways_agree_on_the_hand_worked_company(company):
    by_filters, grouped = both_ways()
    assert by_filters == grouped and len(grouped) == 3  # alice, bob, mallory


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_histories(db, seed):
    with random_company(seed, max_deals=40):
        by_filters, grouped = both_ways()
        assert by_filters == grouped
