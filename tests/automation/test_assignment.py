"""Lead assignment: round-robin fairness, conditions, daily caps, the gate, web-form leads."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leakmap.automation.assignment import assign_lead, assign_unowned_leads
from leakmap.automation.models import AssignmentRule, LeadAssignment
from leakmap.crm import services
from leakmap.crm.models import Lead
from tests.factories import (
    T0,
    IndustryFactory,
    LeadFactory,
    SourceFactory,
    TeamFactory,
    UserFactory,
    days,
    make_deal,
)


@pytest.fixture
def carol(team, manager):
    return UserFactory(username="carol", role="rep", team=team, manager=manager)


def unowned(n: int, **fields) -> list[int]:
    """Leads as an importer leaves them: no owner yet (bulk, so no event assigns them)."""
    Lead.objects.bulk_create(
        [Lead(name=f"L{i}", created_at=T0 + dt.timedelta(seconds=i), **fields) for i in range(n)]
    )
    return list(Lead.objects.filter(owner__isnull=True).order_by("id").values_list("id", flat=True))


def owners() -> Counter:
    return Counter(
        Lead.objects.filter(owner__isnull=False).values_list("owner__username", flat=True)
    )


def test_it_spreads_1000_leads_round_robin_within_one_of_each_other(
    team, rep, teammate, carol, manager, outsider
):
    AssignmentRule.objects.create(name="East", team=team)
    unowned(1000)

    with CaptureQueriesContext(connection) as ctx:
        assert assign_unowned_leads(now=T0 + days(1)) == 1000
    # SAVEPOINT; the unowned leads (FOR UPDATE); the rules; the team's reps with pointer and
    # 24 h count; one UPDATE per rep; the INSERT of the 1,000 assignment rows (one on
    # PostgreSQL; five on SQLite, whose 999 bound parameters take 249 rows of 4 columns); RELEASE.
    inserts = 1 if connection.vendor == "postgresql" else 5
    assert len(ctx.captured_queries) == 1 + 1 + 1 + 1 + 3 + inserts + 1
    # Reps only: the manager and the other team's rep get none.
    assert owners() == Counter({"alice": 334, "bob": 333, "carol": 333})
    assert LeadAssignment.objects.count() == 1000

    # The next batch continues the rotation where the last one stopped.
    unowned(2)
    assert assign_unowned_leads(now=T0 + days(2)) == 2
    assert owners() == Counter({"alice": 334, "bob": 334, "carol": 334})


def test_it_rotates_one_lead_at_a_time_too(team, rep, teammate, carol):
    AssignmentRule.objects.create(name="East", team=team)
    given = [
        assign_lead(LeadFactory(owner=None), now=T0 + dt.timedelta(minutes=i)).username
        for i in range(7)
    ]
    assert given == ["alice", "bob", "carol", "alice", "bob", "carol", "alice"]


def test_it_respects_the_daily_cap_over_the_last_24_hours(team, rep, teammate, carol):
    AssignmentRule.objects.create(name="East", team=team, daily_cap=100)
    unowned(1000)

    assert assign_unowned_leads(now=T0) == 300
    assert owners() == Counter({"alice": 100, "bob": 100, "carol": 100})
    assert Lead.objects.filter(owner__isnull=True).count() == 700
    # 23 hours later the window still holds yesterday's 100 each.
    assert assign_unowned_leads(now=T0 + dt.timedelta(hours=23)) == 0
    # 24 hours later it has rolled over.
    assert assign_unowned_leads(now=T0 + dt.timedelta(hours=24, seconds=1)) == 300
    assert owners() == Counter({"alice": 200, "bob": 200, "carol": 200})


def test_it_falls_through_to_the_next_rule_when_a_team_is_capped(team, rep, teammate, outsider):
    AssignmentRule.objects.create(name="East", team=team, daily_cap=1, sequence=1)
    AssignmentRule.objects.create(name="South", team=outsider.team, sequence=2)
    unowned(5)
    assert assign_unowned_leads(now=T0) == 5
    assert owners() == Counter({"alice": 1, "bob": 1, "mallory": 3})


def test_it_matches_leads_by_source_industry_and_region(team, rep, teammate, outsider):
    fair = SourceFactory(name="展会")
    retail = IndustryFactory(name="零售")
    AssignmentRule.objects.create(name="Fairs", team=outsider.team, source=fair, sequence=1)
    AssignmentRule.objects.create(
        name="North retail", team=team, industry=retail, region="华北", sequence=2
    )
    fair_lead = LeadFactory(owner=None, source=fair)
    retail_north = LeadFactory(owner=None, source=None, industry=retail, region=" 华北 ")
    retail_south = LeadFactory(owner=None, source=None, industry=retail, region="华南")
    other = LeadFactory(owner=None, source=None)

    assert assign_unowned_leads(now=T0) == 2
    assert Lead.objects.get(pk=fair_lead.pk).owner == outsider
    assert Lead.objects.get(pk=retail_north.pk).owner == rep
    assert Lead.objects.get(pk=retail_south.pk).owner is None
    assert Lead.objects.get(pk=other.pk).owner is None


def test_it_skips_a_rep_over_the_gate_until_they_catch_up(team, rep, teammate):
    rule = AssignmentRule.objects.create(name="East", team=team, gate_max_open_issues=1)
    now = T0 + days(10)
    # Two open deals overdue for follow-up: over the gate of 1.
    late = [make_deal(owner=rep, next_follow_up=T0 + days(i)) for i in (1, 2)]
    unowned(4)
    assert assign_unowned_leads(now=now) == 4
    assert owners() == Counter({"bob": 4})

    # Alice follows one up: one issue left, which the gate allows.
    services.activity_log(services.ActivityInput(owner=rep, kind="call", deal=late[0], done_at=now))
    unowned(2)
    assert assign_unowned_leads(now=now + dt.timedelta(hours=1)) == 2
    assert owners() == Counter({"bob": 5, "alice": 1})

    # With the gate off, issues do not matter.
    rule.gate_max_open_issues = None
    rule.save()
    make_deal(owner=rep, next_follow_up=T0 + days(3))
    unowned(2)
    assert assign_unowned_leads(now=now + dt.timedelta(hours=2)) == 2
    assert owners() == Counter({"bob": 6, "alice": 2})


def test_it_counts_open_deals_missing_a_required_field_against_the_gate(team, rep, teammate):
    from leakmap.crm.models import Stage

    AssignmentRule.objects.create(name="East", team=team, gate_max_open_issues=0)
    deal = make_deal(owner=rep, stage_key="negotiation", amount=5000)
    # The admin starts requiring a contact from negotiation on: Alice's deal now lacks one.
    Stage.objects.filter(key="negotiation").update(required_fields=["contact"])
    unowned(2)
    assert assign_unowned_leads(now=T0) == 2
    assert owners() == Counter({"bob": 2})
    assert deal.contact is None


def test_it_assigns_a_lead_created_without_owner_when_the_intake_asks_for_the_rules(
    team, rep, teammate, django_capture_on_commit_callbacks
):
    AssignmentRule.objects.create(name="East", team=team)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.lead_create(
            services.LeadInput(name="From the web", created_at=T0), use_assignment_rules=True
        )
        second = services.lead_create(
            services.LeadInput(name="Also from the web", created_at=T0), use_assignment_rules=True
        )
        kept = services.lead_create(
            services.LeadInput(name="Walk-in", owner=teammate, created_at=T0),
            use_assignment_rules=True,
        )
        unasked = services.lead_create(services.LeadInput(name="No rules asked for", created_at=T0))
    # Decided in the intake itself: the returned lead already has its owner.
    assert (first.owner, second.owner) == (rep, teammate)
    assert Lead.objects.get(pk=first.pk).owner == rep
    assert Lead.objects.get(pk=second.pk).owner == teammate
    assert Lead.objects.get(pk=kept.pk).owner == teammate
    assert Lead.objects.get(pk=unasked.pk).owner is None
    assert LeadAssignment.objects.count() == 2


def test_it_leaves_a_lead_unowned_when_no_rule_can_take_it(team, rep):
    AssignmentRule.objects.create(name="East", team=team, is_active=False)
    lead = LeadFactory(owner=None)
    assert assign_lead(lead, now=T0) is None
    assert assign_unowned_leads(now=T0) == 0
    assert Lead.objects.get(pk=lead.pk).owner is None


def test_it_only_assigns_the_given_open_leads(team, rep, teammate):
    AssignmentRule.objects.create(name="East", team=team)
    ids = unowned(3)
    Lead.objects.filter(pk=ids[2]).update(status="disqualified")
    assert assign_unowned_leads([ids[0], ids[2]], now=T0) == 1
    assert list(Lead.objects.filter(owner__isnull=False).values_list("id", flat=True)) == [ids[0]]


def test_it_never_hands_a_lead_to_another_team_or_an_inactive_rep(team, rep, teammate):
    TeamFactory(name="empty")
    teammate.is_active = False
    teammate.save()
    AssignmentRule.objects.create(name="East", team=team)
    unowned(3)
    assert assign_unowned_leads(now=T0) == 3
    assert owners() == Counter({"alice": 3})
