"""Reports, Today and the workflow rules share one definition of over SLA and silent
(crm.rules, CONTRACT §4): at exactly the limit a deal is not over it; a second later it is."""

from __future__ import annotations

import datetime as dt

from django.test import override_settings

from leakmap.analytics.stuck import stuck_now_q, stuck_reasons
from leakmap.automation.models import Rule
from leakmap.crm.models import Deal, Stage
from tests.analytics.journeys import by, rows
from tests.factories import T0, days, make_deal

SECOND = dt.timedelta(seconds=1)


def stuck(as_of: dt.datetime) -> dict[int, str]:
    """deal id -> reason, from the stuck report as of `as_of`."""
    return {r["deal_id"]: r["reason"] for r in rows("stuck", as_of=as_of)}


def on_today(deal: Deal, now: dt.datetime) -> bool:
    """Whether Today's list rule (current facts) holds the deal at `now`."""
    stages = list(Stage.objects.order_by("pipeline_id", "order"))
    return Deal.objects.filter(stuck_now_q(stages, now), pk=deal.pk).exists()


@override_settings(LEAKMAP_NO_FOLLOW_UP_DAYS=30)
def test_it_agrees_on_over_sla_at_exactly_the_sla_and_one_second_over(
    clock, only_rule, rep, manager
):
    only_rule("stage_sla")
    deal = make_deal(owner=rep, name="Acme ERP")  # qualification: SLA 7 days
    exactly = T0 + days(7)

    assert stuck(exactly) == {}
    assert not on_today(deal, exactly)
    assert stuck_reasons(Deal.objects.get(pk=deal.pk), exactly)["over_sla"] is False
    assert by(rows("stage-time", as_of=exactly), "stage")["qualification"]["open_over_sla"] == 0
    assert clock.at(days(7)).run().firings == []

    over = exactly + SECOND
    assert stuck(over) == {deal.pk: "over_sla"}
    assert on_today(deal, over)
    assert stuck_reasons(Deal.objects.get(pk=deal.pk), over)["over_sla"] is True
    assert by(rows("stage-time", as_of=over), "stage")["qualification"]["open_over_sla"] == 1
    assert [(f.rule, f.record_id) for f in clock.at(days(7) + SECOND).run().firings] == [
        ("stage_sla", deal.pk)
    ]


@override_settings(LEAKMAP_NO_FOLLOW_UP_DAYS=3)
def test_it_reminds_after_LEAKMAP_NO_FOLLOW_UP_DAYS_as_the_reports_and_today_do(
    clock, only_rule, rep, manager
):
    # The installed rule has no days of its own: it follows the setting.
    assert Rule.objects.get(key="no_follow_up").days is None
    only_rule("no_follow_up")
    deal = make_deal(owner=rep, name="Acme ERP")  # qualification: SLA 7 days, longer than 3

    assert stuck(T0 + days(3)) == {}
    assert not on_today(deal, T0 + days(3))
    assert clock.at(days(3)).run().firings == []

    over = T0 + days(3) + SECOND
    assert stuck(over) == {deal.pk: "no_follow_up"}
    assert on_today(deal, over)
    result = clock.at(days(3) + SECOND).run()
    assert [(f.rule, f.record_id, f.step) for f in result.firings] == [
        ("no_follow_up", deal.pk, "")
    ]


def test_it_lets_a_rule_with_its_own_days_override_the_setting(clock, only_rule, rep):
    only_rule("no_follow_up", days=2, escalate_after_days=None)
    make_deal(owner=rep)
    with override_settings(LEAKMAP_NO_FOLLOW_UP_DAYS=30):
        assert clock.at(days(2)).run().firings == []
        assert len(clock.at(days(2) + SECOND).run().firings) == 1
