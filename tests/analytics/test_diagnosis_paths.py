"""For every lead and deal now — of everyone, or of some owners (a rep, a team, what a manager
or a rep may see) — the diagnosis reads the facts the database keeps: lead counts from the
lead tally (also the sources report's leads), the owners report's groups, stuck and late-lost
deals from the tallies and index ranges on the deals' own columns. Any other scope counts from
the records. Both must give the same figures — and the tally must step aside when a lead's
converted or contacted time is after the clock (it does not know the clock)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db.models import Max
from hypothesis import given
from hypothesis import strategies as st

from leakmap.accounts.models import User
from leakmap.analytics import counts, diagnosis, sources
from leakmap.analytics.base import tally_owners
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm import services
from leakmap.crm.models import Activity, Deal, Lead, LeadStatus, StageChange
from tests.analytics.journeys import day
from tests.analytics.test_properties import CLOCK, SETTINGS, random_company
from tests.factories import LeadFactory


def figures(as_of: dt.datetime | None = None, **narrowed) -> tuple:
    scope = resolve(ReportFilters(as_of=as_of, **narrowed))
    return (
        dataclasses.asdict(diagnosis.collect(scope)),
        sorted((dataclasses.asdict(r) for r in sources.sources(scope).rows), key=str),
    )


def both_ways(monkeypatch, **narrowed) -> tuple[tuple, tuple]:
    tallied = figures(**narrowed)
    with monkeypatch.context() as m:
        m.setattr(counts, "tally_owners", lambda scope: None)
        counted = figures(**narrowed)
    return tallied, counted


def owner_narrowings() -> list[dict]:
    """Every way a scope is narrowed only by who owns the records."""
    out: list[dict] = []
    for user in User.objects.order_by("pk"):
        out.append({"owner": user.username})
        out.append({"viewer": user})
        if user.team_id is not None:
            out.append({"team": user.team.name})
            out.append({"team": user.team.name, "viewer": user})
    return out


def touch_leads(rnd: random.Random) -> None:
    """Disqualify some leads, contact others around the one-day line."""
    owner = Lead.objects.exclude(owner=None).first().owner
    for lead in Lead.objects.exclude(status=LeadStatus.CONVERTED):
        r = rnd.random()
        if r < 0.3:
            services.lead_disqualify(lead=lead, reason="无预算")
        elif r < 0.7:
            at = lead.created_at + dt.timedelta(hours=rnd.choice([1, 23, 24, 25, 72]))
            services.activity_log(
                services.ActivityInput(owner=owner, kind="call", lead=lead, done_at=at)
            )


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: CLOCK)


def test_both_ways_agree_on_the_hand_worked_company(company, clock, monkeypatch):
    tallied, counted = both_ways(monkeypatch)
    assert tallied == counted
    assert any(r["stuck_over_sla"] for r in tallied[0]["reps"])
    assert any(r["lost_reasons"] for r in tallied[0]["reps"])


def test_both_ways_agree_for_a_team_a_rep_and_what_each_user_may_see(
    company, rep, outsider, manager, admin_user, clock, monkeypatch
):
    # A deal whose lead another team's rep owns, and an unassigned lead: the deal counts for
    # its own owner, the lead for whoever may see unassigned leads (admins and managers).
    lead = LeadFactory(owner=outsider, created_at=day(1))
    services.lead_convert(
        lead=lead,
        data=services.ConversionInput(owner=rep, deal_name="跨组", amount=Decimal(700)),
        by=outsider,
        at=day(3),
    )
    assert Deal.objects.get(lead=lead).owner == rep
    LeadFactory(owner=None, created_at=day(2))
    narrowings = owner_narrowings()
    assert {"team": "华东一组", "viewer": manager} in narrowings
    for narrowed in narrowings:
        tallied, counted = both_ways(monkeypatch, **narrowed)
        assert tallied == counted, narrowed
    # The tallies answer for a manager's team: their deals, not the other team's.
    mine = figures(viewer=manager)[0]
    assert tally_owners(resolve(ReportFilters(viewer=manager))).deals is not None
    assert {r["owner"] for r in mine["reps"]} == {"alice", "bob"}
    assert mine["deals"] == Deal.objects.filter(owner__team=manager.team).count()


@given(seed=st.integers(0, 10_000), clock_day=st.sampled_from([6, 12, 30, 90]))
@SETTINGS
def test_both_ways_agree_on_random_companies(db, monkeypatch, seed, clock_day):
    # Clocks inside the generated weeks too: some deals are past their stage's SLA, some not.
    monkeypatch.setattr("django.utils.timezone.now", lambda: day(clock_day))
    with random_company(seed, max_deals=20) as rnd:
        touch_leads(rnd)
        tallied, counted = both_ways(monkeypatch)
        assert tallied == counted
        for narrowed in owner_narrowings():
            tallied, counted = both_ways(monkeypatch, **narrowed)
            assert tallied == counted, narrowed


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


def test_a_managers_sources_count_only_the_deals_they_may_see(rep, outsider, manager, admin_user):
    """The sources' deals are those of the scope's leads; a lead of the manager's team whose
    deal went to another team's rep is counted as a lead, and its deal only for those who may
    see that deal."""
    handed_on = LeadFactory(owner=rep, created_at=day(1))
    services.lead_convert(
        lead=handed_on,
        data=services.ConversionInput(owner=outsider, deal_name="转给华南", amount=Decimal(900)),
        by=rep,
        at=day(2),
    )
    kept = LeadFactory(owner=rep, created_at=day(1), source=handed_on.source)
    services.lead_convert(
        lead=kept,
        data=services.ConversionInput(deal_name="自己跟", amount=Decimal(100)),
        by=rep,
        at=day(2),
    )

    def row(**narrowed):
        rows = sources.sources(resolve(ReportFilters(**narrowed))).rows
        return next((r.leads, r.deals) for r in rows if r.source == handed_on.source.name)

    assert row(viewer=manager) == (2, 1)
    assert row(viewer=rep) == (2, 1)
    assert row(viewer=admin_user) == (2, 2)
    assert row(owner=rep.username) == (2, 2)  # the CLI's --owner: deals of that rep's leads
