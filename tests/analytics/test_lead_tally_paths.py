"""For every lead now, the diagnosis' per-rep and per-source lead counts and the sources report's
leads come from the lead tally the database keeps; any other scope counts the leads. Both must
give the same figures — and the tally must step aside when a lead's converted or contacted
time is after the clock (it does not know the clock)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics import diagnosis, sources
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm import services
from leakmap.crm.models import Lead, LeadStatus
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
        for module in (diagnosis, sources):
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


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_both_ways_agree_on_random_companies(db, clock, monkeypatch, seed):
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
