"""For every lead and deal now, the diagnosis reads the facts the database keeps: lead counts
from the lead tally (also the sources report's leads), the owners report's groups, stuck and
late-lost deals from index ranges on the deals' own columns. Any other scope counts from the
records. Both must give the same figures — and the tally must step aside when a lead's
converted or contacted time is after the clock (it does not know the clock)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest
from django.db.models import Max
from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics import diagnosis, owners, sources
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm import services
from leakmap.crm.models import Activity, Lead, LeadStatus, StageChange
from tests.analytics.journeys import day
from tests.analytics.test_properties import CLOCK, SETTINGS, random_company


def figures(as_of: dt.datetime | None = None) -> tuple:
    scope = resolve(ReportFilters(as_of=as_of))
    return (
        dataclasses.asdict(diagnosis.collect(scope)),
        sorted((dataclasses.asdict(r) for r in sources.sources(scope).rows), key=str),
    )


def both_ways(monkeypatch) -> tuple[tuple, tuple]:
    tallied = figures()
    with monkeypatch.context() as m:
        for module in (diagnosis, owners, sources):
            m.setattr(module, "every_deal_now", lambda scope: False)
        counted = figures()
    return tallied, counted


def touch_leads(rnd: random.Random) -> None:
    """Disqualify some leads, contact others around the one-day line."""
    owner = Lead.objects.exclude(owner=None).first().owner
    for lead in Lead.objects.exclude(status=LeadStatus.CONVERTED):
        r = rnd.random()
        if r < 0.3:
            services.lead_disqualify(lead=lead, reason="无预算")
        elif r < 0.7:
            at = lead.created_at + dt.timedelta(hours=rnd.choice([1, 23, 24, 25, 72]))
            services.activity_log(owner=owner, kind="call", lead=lead, done_at=at)


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: CLOCK)


def test_both_ways_agree_on_the_hand_worked_company(company, clock, monkeypatch):
    tallied, counted = both_ways(monkeypatch)
    assert tallied == counted
    assert any(r["stuck_over_sla"] for r in tallied[0]["reps"])
    assert any(r["lost_reasons"] for r in tallied[0]["reps"])


@given(seed=st.integers(0, 10_000), clock_day=st.sampled_from([6, 12, 30, 90]))
@SETTINGS
def test_both_ways_agree_on_random_companies(db, monkeypatch, seed, clock_day):
    # Clocks inside the generated weeks too: some deals are past their stage's SLA, some not.
    monkeypatch.setattr("django.utils.timezone.now", lambda: day(clock_day))
    with random_company(seed, max_deals=20) as rnd:
        touch_leads(rnd)
        tallied, counted = both_ways(monkeypatch)
        assert tallied == counted


def test_a_conversion_after_the_clock_is_not_counted(db, clock, monkeypatch):
    with random_company(7, max_deals=20) as rnd:
        touch_leads(rnd)
        lead = Lead.objects.filter(status=LeadStatus.CONVERTED).first()
        Lead.objects.filter(pk=lead.pk).update(converted_at=CLOCK + dt.timedelta(days=1))
        tallied, counted = both_ways(monkeypatch)
        assert tallied == counted
        rep = next(r for r in tallied[0]["reps"] if r["owner"] == lead.owner.username)
        assert (
            rep["converted"]
            == Lead.objects.filter(owner=lead.owner, converted_at__lte=CLOCK).count()
        )


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_as_of_a_moment_after_every_event_agrees_with_now(db, monkeypatch, seed):
    """--as-of reads the history; without it the facts kept on the deals, the tallies and
    the index ranges. Two days after the last event, when the SLAs of the deals moved last
    still run and those of the rest have passed, both must say the same."""
    with random_company(seed, max_deals=20) as rnd:
        touch_leads(rnd)
        last = max(
            t
            for t in (
                StageChange.objects.aggregate(t=Max("at"))["t"],
                Activity.objects.aggregate(t=Max("done_at"))["t"],
                Lead.objects.aggregate(t=Max("created_at"))["t"],
            )
            if t is not None
        )
        clock = last + dt.timedelta(days=2)
        monkeypatch.setattr("django.utils.timezone.now", lambda: clock)
        now, as_of = figures(), figures(as_of=clock)
        assert now[0] == as_of[0]
