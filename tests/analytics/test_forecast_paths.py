"""For every deal now, the forecast reads its calibration counts from the deal tally
(analytics.counts); counted from the deals themselves, it must give the same report."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics import counts, forecast
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm.models import Deal
from tests.analytics.journeys import day
from tests.analytics.test_properties import CLOCK, SETTINGS, random_company


def both_ways(monkeypatch) -> tuple[dict, dict]:
    tallied = forecast.forecast(resolve(ReportFilters())).to_json()
    with monkeypatch.context() as m:
        m.setattr(counts, "tally_owners", lambda scope: None)
        counted = forecast.forecast(resolve(ReportFilters())).to_json()
    return tallied, counted


def spread_close_dates(rnd: random.Random) -> None:
    """Expected close dates over a few months, some left empty."""
    for deal in Deal.objects.all():
        month = rnd.choice([None, 1, 2, 3])
        close = dt.date(2027, month, rnd.randint(1, 28)) if month else None
        Deal.objects.filter(pk=deal.pk).update(expected_close_date=close)


def test_both_ways_agree_on_the_hand_worked_company(company, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: CLOCK)
    tallied, counted = both_ways(monkeypatch)
    assert tallied == counted
    assert tallied["rows"] and any(c["closed"] for c in tallied["calibration"])


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_companies(db, monkeypatch, seed):
    monkeypatch.setattr("django.utils.timezone.now", lambda: day(90))
    with random_company(seed, max_deals=20) as rnd:
        spread_close_dates(rnd)
        tallied, counted = both_ways(monkeypatch)
        assert tallied == counted
