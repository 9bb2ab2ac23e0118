"""stage-time over the whole company reads the stays kept sorted by the database
(StageChange.stay_seconds / stay_centidays and the stage_stay_sorted index); any other scope sorts
its observations. Both must give the same figures, so each test runs both on the same data."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics.base import load_stages, whole_company_now
from leakmap.analytics.distributions import summaries_by_sorting, summaries_from_sorted_stays
from leakmap.analytics.filters import ReportFilters, Scope, resolve
from leakmap.analytics.stage_time import stage_time
from leakmap.crm import services
from leakmap.crm.models import StageChange, StayTally
from tests.analytics.journeys import day, deal
from tests.analytics.test_properties import SETTINGS, random_company


def scope_at(now, **filters) -> Scope:
    """A scope evaluated "now" at a fixed moment, as if the report ran then without --as-of."""
    return dataclasses.replace(resolve(ReportFilters(**filters)), now=now)


def test_the_database_keeps_each_finished_stay(rep):
    j = deal(owner=rep, created=day(0)).enters("proposal", day(2, hours=3)).won(day(7))
    entries = list(
        StageChange.objects.filter(deal=j.deal)
        .order_by("at", "id")
        .values_list("to_stage__key", "stay_seconds", "stay_centidays")
    )
    # qualification d0 → proposal d2 03:00 (2.125 days) → won d7 (4.875 days), still there
    assert entries == [
        ("qualification", 2 * 86400 + 3 * 3600, 212),
        ("proposal", 4 * 86400 + 21 * 3600, 487),
        ("won", None, None),
    ]
    # Reopening gives the won entry an end: an UPDATE of left_at, recomputed by the database.
    j.enters("negotiation", day(9, hours=12))
    won = StageChange.objects.get(deal=j.deal, to_stage__key="won")
    assert (won.stay_seconds, won.stay_centidays) == (2 * 86400 + 12 * 3600, 250)


def test_only_the_whole_company_now_reads_the_sorted_stays(company, rep):
    late = day(40)
    assert whole_company_now(scope_at(late))
    assert not whole_company_now(scope_at(late, owner="alice"))
    assert not whole_company_now(scope_at(late, date_from=day(0).date()))
    assert not whole_company_now(resolve(ReportFilters(as_of=late)))
    assert not whole_company_now(scope_at(late, viewer=rep))  # a rep sees only theirs
    # An entry after the clock (future-dated history) would be a finished stay in the index
    # but is not one yet at that clock.
    assert not whole_company_now(scope_at(day(10)))


def test_both_ways_agree_on_the_hand_worked_company(company, django_assert_max_num_queries):
    scope = scope_at(day(30))
    stages = load_stages()
    assert summaries_from_sorted_stays(scope, stages) == summaries_by_sorting(scope, stages)
    # stages, the future check, buckets, open deals (with and without stage_entered_at), the
    # chosen buckets' values
    with django_assert_max_num_queries(6):
        r = {row.stage: row for row in stage_time(scope).rows}
    q = r["qualification"]  # D1 3, D2 1, D3 2, D5 20 days, D4 28 and still there
    assert (q.entered, q.mean_days, q.median_days, q.p90_days) == (5, 10.8, 3.0, 28.0)
    assert (q.km_median_days, q.open_now, q.open_over_sla) == (3.0, 1, 1)
    n = r["needs_analysis"]  # D2 3 days; D6 (no history) there 29 days and counting
    assert (n.entered, n.median_days, n.p90_days, n.km_median_days) == (2, 16.0, 29.0, 3.0)
    assert r["verbal"].entered == 0 and r["verbal"].median_days is None


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_histories(db, seed):
    with random_company(seed) as rnd:
        stages = load_stages()
        # day(90) is after every generated event, so the sorted stays always serve it; an
        # earlier clock may fall before some entries, and then only the sorting path may.
        assert whole_company_now(scope_at(day(90)))
        for now in (day(90), day(rnd.uniform(26, 60))):
            scope = scope_at(now)
            if whole_company_now(scope):
                assert summaries_from_sorted_stays(scope, stages) == summaries_by_sorting(
                    scope, stages
                )


def test_a_stay_of_exactly_some_hundredths_of_a_day_is_bucketed_alike(rep):
    # 0.29 days = 25,056 s: bucket 29 by integer arithmetic, but 0.29 * 100 in floating point is
    # 28.999999999999996, which truncates to 28.
    deal(owner=rep, created=day(0)).enters("proposal", day(0, hours=0.29 * 24))
    deal(owner=rep, created=day(0)).enters("proposal", day(0, hours=12))
    scope = scope_at(day(1))
    stages = load_stages()
    qualification = next(s for s in stages.open if s.key == "qualification")
    by_sorting = summaries_by_sorting(scope, stages)
    assert by_sorting[qualification.id].km_median == 0.29  # half the stays end at 0.29 days
    assert summaries_from_sorted_stays(scope, stages) == by_sorting


def test_the_stays_of_deleted_deals_are_gone_from_both_ways(rep):
    """A deleted deal's stays leave their StayTally groups, some with none left (n = 0): the
    sorted stays must read as if they had never been."""
    deal(owner=rep, created=day(0)).enters("proposal", day(3)).enters("negotiation", day(4))
    gone = deal(owner=rep, created=day(0)).enters("proposal", day(1, hours=5))
    gone.enters("negotiation", day(2)).won(day(2, hours=7))
    services.deal_delete(deal=gone.deal)
    assert StayTally.objects.filter(n=0).exists()
    scope = scope_at(day(5))
    stages = load_stages()
    by_sorting = summaries_by_sorting(scope, stages)
    assert summaries_from_sorted_stays(scope, stages) == by_sorting
    proposal = next(s for s in stages.open if s.key == "proposal")
    assert by_sorting[proposal.id].stats.n == 1


def test_a_stay_of_exactly_the_sla_is_not_over_it(rep):
    """Over the SLA means longer than its days: a stay of exactly that long is not, one a second
    longer is (the sorted stays read that limit's bucket value by value)."""
    stages = load_stages()
    proposal = next(s for s in stages.open if s.key == "proposal")
    assert proposal.sla_days
    now = day(30)
    limit = dt.timedelta(days=proposal.sla_days)
    second = dt.timedelta(seconds=1)
    for stay in (limit - second, limit, limit + second, limit + dt.timedelta(seconds=900)):
        deal(owner=rep, created=day(0)).enters("proposal", now - stay)
    scope = scope_at(now)
    from_sorted = summaries_from_sorted_stays(scope, stages)[proposal.id]
    assert (from_sorted.open_now, from_sorted.over_sla) == (4, 2)
    assert from_sorted == summaries_by_sorting(scope, stages)[proposal.id]
