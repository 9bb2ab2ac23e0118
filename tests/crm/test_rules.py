"""crm.rules: the business rules and rates of CONTRACT §4, each defined once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings

from leakmap.crm import rules
from leakmap.crm.models import Deal
from tests.factories import T0, days, make_deal

SECOND = dt.timedelta(seconds=1)


def test_it_says_over_sla_only_when_strictly_longer_than_the_sla():
    assert rules.is_over_sla(7, days_in_stage=7.0) is False
    assert rules.is_over_sla(7, days_in_stage=7.00001) is True
    assert rules.is_over_sla(7, entered_at=T0, now=T0 + days(7)) is False
    assert rules.is_over_sla(7, entered_at=T0, now=T0 + days(7) + SECOND) is True
    # A stage without an SLA never makes a deal over it.
    assert rules.is_over_sla(None, days_in_stage=400) is False
    with pytest.raises(TypeError):
        rules.is_over_sla(7)


def test_it_filters_over_sla_in_the_database_as_the_predicate_decides(rep):
    deal = make_deal(owner=rep)  # entered qualification at T0

    def over(now):
        q = rules.over_sla_q("stage_entered_at", now, 7)
        return Deal.objects.filter(q, pk=deal.pk).exists()

    def within(now):
        q = rules.within_sla_q("stage_entered_at", now, 7)
        return Deal.objects.filter(q, pk=deal.pk).exists()

    for now in (T0 + days(7) - SECOND, T0 + days(7), T0 + days(7) + SECOND):
        expected = rules.is_over_sla(7, entered_at=deal.stage_entered_at, now=now)
        assert (over(now), within(now)) == (expected, not expected)
    assert not Deal.objects.filter(rules.over_sla_q("stage_entered_at", T0 + days(99), None))


def test_it_says_silent_after_more_than_the_configured_days():
    with override_settings(LEAKMAP_NO_FOLLOW_UP_DAYS=5):
        assert rules.no_follow_up_days() == 5
        assert rules.is_silent(T0, T0 + days(5)) is False
        assert rules.is_silent(T0, T0 + days(5) + SECOND) is True
        assert rules.silent_cutoff(T0 + days(5)) == T0
    # A report's or a rule's own days win over the setting.
    assert rules.no_follow_up_days(2) == 2
    assert rules.is_silent(T0, T0 + days(2) + SECOND, 2) is True


def test_it_computes_each_rate_as_the_contract_defines_it_and_none_without_a_divisor():
    assert rules.win_rate(1, 4) == 0.25  # won / deals
    assert rules.close_rate(1, 1) == 0.5  # won / (won + lost)
    assert rules.lead_win_rate(1, 10) == 0.1  # won / leads
    assert rules.lead_to_deal_rate(4, 10) == 0.4  # deals / leads
    assert rules.win_rate(0, 0) is None
    assert rules.close_rate(0, 0) is None
    assert rules.lead_win_rate(0, 0) is None
    assert rules.lead_to_deal_rate(0, 0) is None
