"""Every report over the hand-worked `company` journeys (see conftest), with exact figures."""

from __future__ import annotations

import dataclasses

import pytest

from tests.analytics.journeys import by, day, deal, report, rows

AFTER = day(30)  # after all the company's history


def test_it_builds_the_funnel_from_reached_stages(company, django_assert_max_num_queries):
    # stages, leads, deals, the whole-company check, the sorted reaches (grouped, exact hours),
    # won deals' days to close (a count, the middle values)
    with django_assert_max_num_queries(8):
        r = by(rows("funnel"), "step")
    counts = {k: (v["count"], v["amount"]) for k, v in r.items()}
    assert counts == {
        "leads": (0, None),
        "deals": (6, 21000.0),
        "stage:qualification": (6, 21000.0),
        # D1 and D3 skipped it, D5 won past it, D6 (no history) sits in it
        "stage:needs_analysis": (5, 17000.0),
        "stage:proposal": (4, 11000.0),
        "stage:proposal_review": (3, 10000.0),
        "stage:negotiation": (3, 10000.0),
        "stage:verbal": (3, 10000.0),
        "won": (2, 7000.0),  # D3 was won once but is lost now
    }
    assert r["deals"]["conversion_from_previous"] is None  # 0 leads: no divisor
    assert r["stage:needs_analysis"]["conversion_from_previous"] == 5 / 6
    assert r["won"]["conversion_from_previous"] == 2 / 3
    # days to reach needs_analysis: D1 3, D2 1, D3 2, D5 20, D6 0 (no history: at creation)
    assert r["stage:needs_analysis"]["median_days"] == 2.0
    # proposal: D1 3, D2 4 (via negotiation on d5), D3 2, D5 20 → (3 + 4) / 2
    assert r["stage:proposal"]["median_days"] == 3.5
    assert r["stage:qualification"]["median_days"] == 0.0  # where deals are created
    assert r["won"]["median_days"] == 15.0  # D2 10 days to close, D5 20


def test_it_gives_each_rep_their_rates_cycle_and_reached_stages(
    company, django_assert_max_num_queries
):
    # stages, the group-by, the owners' names
    with django_assert_max_num_queries(3):
        r = by(rows("owners"), "owner")
    alice, bob, mallory = r["alice"], r["bob"], r["mallory"]
    assert (alice["deals"], alice["won"], alice["lost"], alice["open"]) == (3, 1, 2, 0)
    assert alice["win_rate"] == 1 / 3 and alice["close_rate"] == 1 / 3
    assert alice["won_amount"] == 2000.0 and alice["avg_cycle_days"] == 10.0
    assert alice["reached"]["proposal_review"] == 2 and alice["reached"]["won"] == 2
    assert (bob["deals"], bob["won"], bob["lost"], bob["open"]) == (2, 1, 0, 1)
    assert (bob["win_rate"], bob["close_rate"]) == (0.5, 1.0)
    assert bob["avg_cycle_days"] == 20.0 and bob["avg_follow_ups_per_deal"] == 0.5
    assert mallory["close_rate"] is None and mallory["avg_cycle_days"] is None
    assert mallory["reached"]["needs_analysis"] == 1 and mallory["reached"]["proposal"] == 0


def test_it_maps_lost_money_by_reason_competitor_and_stage(company, django_assert_max_num_queries):
    # stages, one group-by, the names of reasons, competitors and industries
    with django_assert_max_num_queries(5):
        body = report("lost-reasons").to_json()
    assert body["rows"] == [
        {
            "reason": "被竞争对手拿下",
            "deals": 1,
            "amount": 3000.0,
            "share": 0.5,
            "amount_share": 0.75,
        },
        {"reason": "价格过高", "deals": 1, "amount": 1000.0, "share": 0.5, "amount_share": 0.25},
    ]
    assert body["by_competitor"] == [
        {"key": "竞品A", "deals": 1, "amount": 3000.0},
        {"key": None, "deals": 1, "amount": 1000.0},
    ]
    assert body["by_stage"] == [
        {"key": "negotiation", "deals": 1, "amount": 3000.0},
        {"key": "proposal", "deals": 1, "amount": 1000.0},
    ]
    assert body["matrix"] == [
        {"stage": "negotiation", "reason": "被竞争对手拿下", "deals": 1, "amount": 3000.0},
        {"stage": "proposal", "reason": "价格过高", "deals": 1, "amount": 1000.0},
    ]
    assert sum(r["amount"] for r in body["by_industry"]) == 4000.0


def test_it_measures_time_in_stage_with_censored_deals(company, django_assert_max_num_queries):
    # stages, observations into a temp table, group bounds, middle values, survival points,
    # drop, open-now counts
    with django_assert_max_num_queries(7):
        r = by(rows("stage-time", as_of=AFTER), "stage")
    q = r["stage:qualification".split(":")[1]]
    # qualification stays: D1 3, D2 1, D3 2, D5 20 days, D4 28 and still there
    assert (q["entered"], q["mean_days"], q["median_days"], q["p90_days"]) == (5, 10.8, 3.0, 28.0)
    assert q["km_median_days"] == 3.0
    assert (q["open_now"], q["open_over_sla"]) == (1, 1)
    n = r["needs_analysis"]  # D2 3 days; D6 (no history) there 29 days and counting
    assert (n["entered"], n["median_days"], n["p90_days"], n["km_median_days"]) == (
        2,
        16.0,
        29.0,
        3.0,
    )
    assert (n["open_now"], n["open_over_sla"]) == (1, 1)
    p = r["proposal"]
    assert (p["entered"], p["mean_days"], p["median_days"], p["p90_days"]) == (2, 4.0, 4.0, 6.0)
    assert r["verbal"]["entered"] == 0 and r["verbal"]["median_days"] is None


def test_it_lists_stuck_deals_over_sla_or_without_follow_up(company, django_assert_max_num_queries):
    # stages, the deals, their owners' names
    with django_assert_max_num_queries(3):
        body = report("stuck", as_of=day(9.5)).to_json()
    got = [
        (r["deal"], r["stage"], r["days_in_stage"], r["days_since_follow_up"], r["reason"])
        for r in body["rows"]
    ]
    ids = {company[k].pk: k for k in company}
    assert [ids[r["deal_id"]] for r in body["rows"]] == [5, 6, 4, 2]
    assert [g[1:] for g in got] == [
        ("qualification", 9.5, None, "over_sla"),
        ("needs_analysis", 8.5, None, "no_follow_up"),
        ("qualification", 7.5, 6.5, "over_sla"),
        ("negotiation", 4.5, None, "no_follow_up"),  # as of day 9.5, D2 was negotiating
    ]
    relaxed = report("stuck", as_of=day(9.5), no_follow_up_days=9).to_json()["rows"]
    assert [ids[r["deal_id"]] for r in relaxed] == [5, 4]
    # A page asks for the top of the list only, and learns how long the list is.
    top = report("stuck", as_of=day(9.5), row_limit=2)
    assert [ids[r.deal_id] for r in top.rows] == [5, 6] and top.total_rows == 4
    assert "total_rows" not in top.to_json()
    assert report("stuck", as_of=day(9.5), row_limit=4).total_rows == 4
    assert report("stuck", as_of=day(9.5), row_limit=5).total_rows is None  # nothing cut
    assert report("stuck", as_of=day(9.5)).total_rows is None
    # Its rows spell their JSON out for speed: the same keys and values as the generic walk.
    from leakmap.analytics.base import to_jsonable

    for r in top.rows:
        generic = {f.name: to_jsonable(getattr(r, f.name)) for f in dataclasses.fields(r)}
        assert r.json_row() == generic


def test_it_reports_cycle_per_owner_and_overall(company, django_assert_max_num_queries):
    # stages, the statistics (base.grouped_stats: up to four statements), the owners' names
    with django_assert_max_num_queries(6):
        body = report("cycle").to_json()
    assert body["rows"] == [
        {"owner": "alice", "won": 1, "mean_days": 10.0, "median_days": 10.0, "p90_days": 10.0},
        {"owner": "bob", "won": 1, "mean_days": 20.0, "median_days": 20.0, "p90_days": 20.0},
    ]
    assert body["overall"] == {
        "owner": None,
        "won": 2,
        "mean_days": 15.0,
        "median_days": 15.0,
        "p90_days": 20.0,
    }


def test_it_forecasts_weighted_pipeline_and_checks_calibration(
    company, django_assert_max_num_queries
):
    # stages, month group-by, calibration counts
    with django_assert_max_num_queries(3):
        body = report("forecast").to_json()
    assert body["rows"] == [
        {"month": "2026-03", "deals": 2, "pipeline_amount": 10000.0, "weighted_amount": 1600.0}
    ]
    cal = by(body["calibration"], "stage")
    assert (cal["qualification"]["closed"], cal["qualification"]["won"]) == (4, 2)
    assert cal["qualification"]["historical_win_rate"] == 0.5
    assert cal["qualification"]["brier_score"] == pytest.approx(0.41)
    assert cal["proposal_review"]["closed"] == 3
    assert cal["proposal_review"]["brier_score"] == pytest.approx((2 * 0.45**2 + 0.55**2) / 3)
    assert body["brier_score"] == pytest.approx(6.2475 / 21)


def test_it_reviews_the_last_complete_week_by_default(company, django_assert_max_num_queries):
    # stages, leads, deals created, deals closed, stage entries, leads by owner, deals created
    # and closed by owner, lost reasons
    with django_assert_max_num_queries(9):
        body = report("weekly", as_of=day(8)).to_json()
    r = by(body["rows"], "metric")
    # The clock is Tuesday 2026-01-13 17:00 Asia/Shanghai: the last complete week is the one
    # from Monday 01-05, compared whole with the whole week before it.
    assert body["week"] == "2026-W02"
    assert body["period"] == {"from": "2026-01-05", "to": "2026-01-11"}
    assert body["weeks"][0]["start"] == "2026-01-05" and body["weeks"][0]["complete"]
    assert body["weeks"][1]["end"] == "2026-01-05T00:00:00+08:00"
    assert (r["deals_created"]["this_week"], r["deals_created"]["last_week"]) == (6, 0)
    assert r["deals_created"]["avg_4w"] == 0 and r["deals_created"]["direction"] == "up"
    assert r["entered:qualification"]["this_week"] == 5
    assert r["entered:negotiation"]["this_week"] == 2
    assert r["won_amount"]["this_week"] == 0.0  # D3's win was undone before the clock
    assert r["entered:lost"]["this_week"] == 0 and body["top_lost_reasons"] == []
    assert {o["owner"]: o["deals_this_week"] for o in body["by_owner"]} == {
        "alice": 3,
        "bob": 2,
        "mallory": 1,
    }


def test_it_compares_a_running_week_with_the_same_hours_of_the_weeks_before(company):
    import datetime as dt

    body = report("weekly", as_of=day(8), week=dt.date(2026, 1, 12)).to_json()
    r = by(body["rows"], "metric")
    assert body["week"] == "2026-W03" and not body["weeks"][0]["complete"]
    assert body["period"] == {"from": "2026-01-12", "to": "2026-01-13"}
    # 1 day 17 hours of each week: the week before runs to Tuesday 01-06 17:00 local, which
    # is day(1) itself (exclusive), so D2 and D6 made at that instant do not count.
    assert body["weeks"][1]["end"] == "2026-01-06T17:00:00+08:00"
    assert (r["deals_created"]["this_week"], r["deals_created"]["last_week"]) == (0, 3)
    assert (r["entered:lost"]["this_week"], r["lost_amount"]["this_week"]) == (1, 3000.0)
    assert r["lost_amount"]["direction"] == "up"
    assert body["top_lost_reasons"] == [{"key": "被竞争对手拿下", "deals": 1, "amount": 3000.0}]


def test_it_refuses_a_week_that_has_not_started(company):
    import datetime as dt

    from leakmap.analytics import ReportInputError

    with pytest.raises(ReportInputError, match="2026-01-19"):
        report("weekly", as_of=day(8), week=dt.date(2026, 1, 19))


def test_it_ignores_history_after_as_of(company):
    r = by(rows("funnel", as_of=day(4.5)), "step")
    # At day 4.5: D3 won (day 4), D2 in needs_analysis, D1 in proposal; D5/D6 as made.
    assert r["won"]["count"] == 1 and r["won"]["amount"] == 3000.0
    assert r["stage:negotiation"]["count"] == 1  # D3 through its win
    o = by(rows("owners", as_of=day(4.5)), "owner")
    assert (o["alice"]["won"], o["alice"]["lost"], o["alice"]["open"]) == (1, 0, 2)
    assert rows("lost-reasons", as_of=day(4.5)) == []
    early = by(rows("funnel", as_of=day(0.5)), "step")
    assert early["deals"]["count"] == 3  # D2, D4, D6 did not exist yet


@pytest.mark.parametrize(
    "name",
    [
        "funnel",
        "owners",
        "sources",
        "lost-reasons",
        "stage-time",
        "stuck",
        "cycle",
        "forecast",
        "weekly",
    ],
)
def test_it_gives_the_same_figures_from_facts_and_from_history(company, name):
    """With the clock after all data, the fast path (facts on Deal) and --as-of (history) agree."""
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=AFTER):
        fast = report(name).to_json()
    slow = report(name, as_of=AFTER).to_json()
    assert fast == slow


def test_it_shows_a_rep_only_their_own_numbers(company, rep, teammate, manager, outsider):
    mine = by(rows("owners", viewer=rep), "owner")
    assert set(mine) == {"alice"}
    assert by(rows("funnel", viewer=rep), "step")["deals"]["count"] == 3
    # Asking for a teammate through the owner filter finds nothing for a rep.
    assert by(rows("funnel", viewer=rep, owner="bob"), "step")["deals"]["count"] == 0
    assert set(by(rows("owners", viewer=manager), "owner")) == {"alice", "bob"}
    assert set(by(rows("owners", viewer=outsider), "owner")) == {"mallory"}
    assert [r["owner"] for r in rows("stuck", viewer=rep, as_of=day(9.5))] == ["alice"]


def test_it_counts_a_deal_made_after_midnight_local_in_the_next_month(rep):
    import datetime as dt

    deal(owner=rep, created=dt.datetime(2026, 3, 31, 16, 30, tzinfo=dt.UTC)).won(
        dt.datetime(2026, 4, 2, tzinfo=dt.UTC)
    )
    april = rows("owners", date_from=dt.date(2026, 4, 1), date_to=dt.date(2026, 4, 30))
    assert april[0]["deals"] == 1
    assert rows("owners", date_to=dt.date(2026, 3, 31)) == []
