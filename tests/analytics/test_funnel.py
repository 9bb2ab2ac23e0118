from __future__ import annotations

import datetime as dt

import pytest

from tests.analytics.journeys import by, day, deal, lead, report, rows


@pytest.fixture
def journeys(rep, teammate):
    for _ in range(4):
        lead(owner=rep, created=day(0), source="展会")
    deal(owner=rep, created=day(0), amount=1000).enters("proposal", day(3)).lost(day(9))
    deal(owner=rep, created=day(1), amount=2000).enters("needs_analysis", day(2)).enters(
        "negotiation", day(5)
    ).won(day(11))
    deal(owner=teammate, created=day(2), amount=4000)


def test_it_counts_reached_stages_with_skips_amounts_and_conversion(journeys):
    r = by(rows("funnel"), "step")
    assert [k for k in r] == [
        "leads",
        "deals",
        "stage:qualification",
        "stage:needs_analysis",
        "stage:proposal",
        "stage:proposal_review",
        "stage:negotiation",
        "stage:verbal",
        "won",
    ]
    assert r["leads"]["count"] == 4 and r["leads"]["amount"] is None
    assert (r["deals"]["count"], r["deals"]["amount"]) == (3, 7000.0)
    assert r["deals"]["conversion_from_previous"] == 0.75
    # The lost deal skipped needs_analysis on its way to proposal: skipping counts as passing.
    assert (r["stage:needs_analysis"]["count"], r["stage:needs_analysis"]["amount"]) == (2, 3000.0)
    assert r["stage:proposal"]["count"] == 2
    assert r["stage:negotiation"]["count"] == 1
    assert r["stage:verbal"]["count"] == 1
    assert (r["won"]["count"], r["won"]["amount"]) == (1, 2000.0)
    assert r["stage:needs_analysis"]["conversion_from_previous"] == pytest.approx(2 / 3)
    assert r["stage:negotiation"]["conversion_from_previous"] == 1.0
    # Median days from creation: needs_analysis reached on day 3 (skip) and day 1 → 2.0.
    assert r["stage:needs_analysis"]["median_days"] == 2.0
    assert r["stage:negotiation"]["median_days"] == 4.0
    assert r["won"]["median_days"] == 10.0
    assert r["leads"]["median_days"] is None and r["deals"]["median_days"] is None


def test_it_filters_by_owner_and_rejects_unknown_names(journeys, rep):
    r = by(rows("funnel", owner="alice"), "step")
    assert r["deals"]["count"] == 2
    from leakmap.analytics import ReportInputError

    with pytest.raises(ReportInputError, match="nobody"):
        report("funnel", owner="nobody")


def test_it_puts_a_deal_made_at_local_midnight_in_the_local_day(rep):
    # 2026-03-31T16:30Z is 00:30 on April 1 in Asia/Shanghai.
    deal(owner=rep, created=dt.datetime(2026, 3, 31, 16, 30, tzinfo=dt.UTC))
    april = by(rows("funnel", date_from=dt.date(2026, 4, 1), date_to=dt.date(2026, 4, 1)), "step")
    march = by(rows("funnel", date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 31)), "step")
    assert april["deals"]["count"] == 1
    assert march["deals"]["count"] == 0
