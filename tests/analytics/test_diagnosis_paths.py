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
from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics import diagnosis, owners, sources
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm import services
from leakmap.crm.models import Lead, LeadStatus
from tests.analytics.journeys import day
from tests.analytics.test_properties import CLOCK, SETTINGS, random_company


def figures() -> tuple:
    scope = resolve(ReportFilters(as_of=None))
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
