"""Every rule fires, does not fire too early, fires once, and fires again only after its
condition cleared and came back. The clock is the `as_of` of each run."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leakmap.automation.models import AssignmentRule, LeadAssignment, Notification, RuleFiring
from leakmap.crm import services
from leakmap.crm.models import Activity, ActivityKind, Deal, LeadStatus
from tests.factories import T0, LeadFactory, UserFactory, days, lost_reason, make_deal, stage


def notes(kind: str | None = None):
    qs = Notification.objects.order_by("id")
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.values_list("recipient__username", "title"))


def recipients(kind: str) -> list[str]:
    return [r for r, _ in notes(kind)]


SECOND = dt.timedelta(seconds=1)


def follow_up(deal, at, **kw):
    return services.activity_log(
        services.ActivityInput(owner=deal.owner, kind="call", deal=deal, done_at=at, **kw)
    )


# --- 1. no follow-up ---------------------------------------------------------------------------


def test_it_tells_the_owner_and_flags_a_deal_without_follow_up_for_seven_days(
    clock, only_rule, rep, manager
):
    only_rule("no_follow_up")
    deal = make_deal(owner=rep, name="Acme ERP")

    assert clock.at(days(7) - dt.timedelta(minutes=1)).run().firings == []
    # Exactly 7 days is not more than 7 (crm.rules.is_silent).
    assert clock.at(days(7)).run().firings == []
    deal.refresh_from_db()
    assert deal.needs_attention is False

    result = clock.at(days(7) + SECOND).run()
    assert [(f.rule, f.record_id, f.step) for f in result.firings] == [
        ("no_follow_up", deal.pk, "")
    ]
    assert notes("no_follow_up") == [("alice", "No follow-up on “Acme ERP” for 7 days")]
    deal.refresh_from_db()
    assert deal.needs_attention is True
    # Not the manager yet: that is after 7 + 7 days.
    assert "manager" not in recipients("no_follow_up")


def test_it_fires_once_per_episode_and_escalates_to_the_manager_after_fourteen_days(
    clock, only_rule, rep, manager
):
    only_rule("no_follow_up")
    deal = make_deal(owner=rep, name="Acme ERP")
    clock.at(days(7) + SECOND).run()

    assert clock.at(days(8)).run().firings == []
    assert clock.at(days(14)).run().firings == []
    result = clock.at(days(14) + SECOND).run()
    assert [(f.record_id, f.step) for f in result.firings] == [(deal.pk, "escalate")]
    assert recipients("no_follow_up") == ["alice", "manager"]
    assert clock.at(days(20)).run().firings == []
    assert RuleFiring.objects.filter(rule__key="no_follow_up").count() == 2


def test_it_fires_again_only_after_a_follow_up_cleared_the_condition_and_it_came_back(
    clock, only_rule, rep, manager
):
    only_rule("no_follow_up")
    deal = make_deal(owner=rep, name="Acme ERP")
    clock.at(days(7) + SECOND).run()
    follow_up(deal, T0 + days(9))
    deal.refresh_from_db()
    assert deal.needs_attention is False  # the follow-up clears the flag

    assert clock.at(days(16)).run().firings == []  # 7 days since the follow-up
    result = clock.at(days(16) + SECOND).run()  # more than 7 days since: a new episode
    assert [(f.record_id, f.step) for f in result.firings] == [(deal.pk, "")]
    assert recipients("no_follow_up") == ["alice", "alice"]
    deal.refresh_from_db()
    assert deal.needs_attention is True


def test_it_escalates_to_the_team_managers_when_the_owner_has_no_manager(
    clock, only_rule, team, manager
):
    only_rule("no_follow_up")
    second = UserFactory(username="manager2", role="manager", team=team)
    loner = UserFactory(username="carol", role="rep", team=team, manager=None)
    make_deal(owner=loner)
    clock.at(days(14) + SECOND).run()
    assert sorted(recipients("no_follow_up")) == ["carol", "manager", second.username]


def test_it_ignores_closed_deals_and_the_rule_when_switched_off(clock, only_rule, rep):
    rule = only_rule("no_follow_up")
    won = make_deal(owner=rep)
    services.deal_close_won(deal=won, at=T0 + days(1))
    lost = make_deal(owner=rep)
    services.deal_close_lost(deal=lost, lost_reason=lost_reason(), at=T0 + days(1))
    assert clock.at(days(30)).run().firings == []

    open_deal = make_deal(owner=rep)
    rule.is_active = False
    rule.save()
    assert clock.at(days(30)).run().firings == []
    rule.is_active = True
    rule.save()
    assert [f.record_id for f in clock.at(days(30)).run().firings] == [open_deal.pk] * 2


def test_it_uses_the_configured_number_of_days(clock, only_rule, rep, manager):
    only_rule("no_follow_up", days=3, escalate_after_days=None)
    make_deal(owner=rep)
    assert clock.at(days(3)).run().firings == []
    assert len(clock.at(days(3) + SECOND).run().firings) == 1
    assert clock.at(days(60)).run().firings == []  # no escalation configured


# --- 2. stage SLA ------------------------------------------------------------------------------


def test_it_tells_owner_and_manager_when_a_deal_overstays_its_stage_sla(
    clock, only_rule, rep, manager
):
    only_rule("stage_sla")
    deal = make_deal(owner=rep, name="Big one")  # qualification: SLA 7 days

    assert clock.at(days(6)).run().firings == []
    assert clock.at(days(7)).run().firings == []  # exactly the SLA is not over it
    result = clock.at(days(7) + SECOND).run()
    assert [(f.rule, f.record_id) for f in result.firings] == [("stage_sla", deal.pk)]
    assert recipients("stage_sla") == ["alice", "manager"]
    assert clock.at(days(9)).run().firings == []

    # Moving on clears it; the next stage's own SLA (10 days) brings it back.
    services.deal_move(deal=deal, stage=stage("needs_analysis"), at=T0 + days(9))
    assert clock.at(days(19)).run().firings == []
    result = clock.at(days(19) + SECOND).run()
    assert [f.record_id for f in result.firings] == [deal.pk]
    assert recipients("stage_sla") == ["alice", "manager", "alice", "manager"]
    assert Notification.objects.filter(kind="stage_sla").order_by("id").last().title == (
        "“Big one” has been in Needs analysis for 10 days"
    )


def test_it_follows_an_edited_sla_and_skips_stages_without_one(clock, only_rule, rep):
    only_rule("stage_sla")
    qualification = stage("qualification")
    qualification.sla_days = None
    qualification.save()
    make_deal(owner=rep)
    assert clock.at(days(100)).run().firings == []
    qualification.sla_days = 2
    qualification.save()
    assert len(clock.at(days(100)).run().firings) == 1


# --- 3. new lead not contacted ----------------------------------------------------------------


def test_it_tells_the_owner_about_a_new_lead_not_contacted_within_24_hours(
    clock, only_rule, rep, teammate
):
    only_rule("lead_not_contacted")
    lead = LeadFactory(owner=rep, name="Wang", company="Acme")
    contacted = LeadFactory(owner=teammate)
    services.activity_log(
        services.ActivityInput(owner=teammate, kind="call", lead=contacted, done_at=T0 + days(0.5))
    )

    assert clock.at(dt.timedelta(hours=23, minutes=59)).run().firings == []
    result = clock.at(dt.timedelta(hours=24)).run()
    assert [(f.record_type, f.record_id) for f in result.firings] == [("lead", lead.pk)]
    assert notes("lead_not_contacted") == [
        ("alice", "Lead “Wang (Acme)” not contacted for 24 hours")
    ]
    assert clock.at(days(5)).run().firings == []
    lead.refresh_from_db()
    assert lead.owner == rep  # reassigning is off by default


def test_it_reassigns_an_uncontacted_lead_and_fires_again_for_the_new_owner(
    clock, only_rule, team, rep, teammate
):
    only_rule("lead_not_contacted", reassign=True)
    AssignmentRule.objects.create(name="East", team=team)
    lead = LeadFactory(owner=rep, name="Wang", company="")

    clock.at(dt.timedelta(hours=24)).run()
    lead.refresh_from_db()
    assert lead.owner == teammate
    assert notes("lead_not_contacted") == [
        ("alice", "Lead “Wang” not contacted for 24 hours"),
        ("bob", "Lead “Wang” reassigned to you"),
    ]
    # The new owner has their own 24 hours from the reassignment.
    assert clock.at(dt.timedelta(hours=47)).run().firings == []
    result = clock.at(dt.timedelta(hours=48)).run()
    assert [f.actions for f in result.firings] == [
        ["notify:bob", "reassign:bob->alice", "notify:alice"]
    ]
    lead.refresh_from_db()
    assert lead.owner == rep
    assert LeadAssignment.objects.filter(lead=lead).count() == 2


def test_it_stops_once_the_lead_is_contacted(clock, only_rule, rep):
    only_rule("lead_not_contacted", reassign=True)
    lead = LeadFactory(owner=rep)
    services.activity_log(
        services.ActivityInput(
            owner=rep, kind="call", lead=lead, done_at=T0 + dt.timedelta(hours=2)
        )
    )
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONTACTED
    assert clock.at(days(3)).run().firings == []


# --- 4. next follow-up passed -----------------------------------------------------------------


def test_it_creates_an_overdue_task_when_the_next_follow_up_passes(clock, only_rule, rep):
    only_rule("overdue_follow_up")
    due = T0 + days(3)
    deal = make_deal(owner=rep, name="Acme ERP", next_follow_up=due)

    assert clock.at(days(3) - dt.timedelta(seconds=1)).run().firings == []
    result = clock.at(days(3)).run()
    assert [(f.record_id, f.actions) for f in result.firings] == [
        (deal.pk, ["task", "notify:alice"])
    ]
    task = Activity.objects.get(deal=deal)
    assert (task.kind, task.owner, task.due_at, task.done_at) == (
        ActivityKind.TASK,
        rep,
        due,
        None,
    )
    assert task.subject == "Overdue follow-up: “Acme ERP”"
    assert clock.at(days(4)).run().firings == []
    assert Activity.objects.filter(deal=deal).count() == 1


def test_it_fires_again_for_the_next_planned_follow_up_and_not_after_one_was_done(
    clock, only_rule, rep
):
    only_rule("overdue_follow_up")
    deal = make_deal(owner=rep, next_follow_up=T0 + days(3))
    clock.at(days(3)).run()
    # The follow-up happens (late) and plans the next one.
    follow_up(deal, T0 + days(4), next_follow_up=T0 + days(10))
    assert clock.at(days(9)).run().firings == []
    assert [f.record_id for f in clock.at(days(10)).run().firings] == [deal.pk]
    assert Activity.objects.filter(deal=deal, kind="task").count() == 2

    # A follow-up done on time clears the date: nothing to fire.
    on_time = make_deal(owner=rep, next_follow_up=T0 + days(20))
    follow_up(on_time, T0 + days(20))
    assert clock.at(days(21)).run().firings == []


# --- The run as a whole -----------------------------------------------------------------------


def test_it_selects_candidates_with_one_query_per_rule_whatever_the_number_of_deals(
    clock, rep, manager
):
    # Everything below has fired once, so a further run only reads.
    for _ in range(3):
        make_deal(owner=rep, next_follow_up=T0 + days(1))
        LeadFactory(owner=rep)
    clock.at(days(30)).run()

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert clock.run().firings == []
        return len(ctx.captured_queries)

    few = queries()
    # SAVEPOINT (the run's transaction inside the test's); the rules; on PostgreSQL the advisory
    # lock; then one candidate query per rule — lead_not_contacted, manager_digest (managers
    # without today's digest), no_follow_up, overdue_follow_up, stage_sla (its stages' SLAs,
    # then the deals) —; RELEASE SAVEPOINT.
    assert few == 2 + 1 + (connection.vendor == "postgresql") + 6
    for _ in range(5):
        make_deal(owner=rep, next_follow_up=T0 + days(1))
        LeadFactory(owner=rep)
    clock.at(days(30)).run()
    assert queries() == few


def test_it_rolls_back_nothing_but_the_duplicate_when_the_ledger_refuses_a_firing(
    clock, only_rule, rep
):
    """The unique constraint is the second guard: a ledger row written by someone else between
    the candidate query and the insert makes that one firing a no-op."""
    from leakmap.automation.models import Rule
    from leakmap.automation.rules import RunResult, _Run

    only_rule("no_follow_up")
    deal = make_deal(owner=rep)
    rule = Rule.objects.get(key="no_follow_up")
    RuleFiring.objects.create(
        rule=rule,
        record_type="deal",
        record_id=deal.pk,
        occurrence_at=deal.created_at,
        fired_at=T0,
        summary="by another run",
    )
    run = _Run(T0 + days(7), RunResult(as_of=T0 + days(7)))
    fired = run.fire(
        rule,
        record_type="deal",
        record_id=deal.pk,
        occurrence_at=deal.created_at,
        summary="again",
        act=lambda actions: Notification.objects.create(
            recipient=rep, kind="x", title="never", created_at=T0
        ),
    )
    assert fired is False
    assert Notification.objects.count() == 0
    assert RuleFiring.objects.count() == 1


# --- Required fields per stage (the foundation's check; proven here) -------------------------


def test_it_requires_amount_and_close_date_to_enter_proposal_by_default(rep):
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)
    with pytest.raises(ValidationError) as err:
        services.deal_move(deal=deal, stage=stage("proposal"), at=T0 + days(1))
    assert sorted(err.value.message_dict) == ["amount", "expected_close_date"]
    assert err.value.message_dict["amount"] == [
        "amount is required to enter stage “Proposal sent”."
    ]
    # Skipping past proposal does not dodge its requirements.
    with pytest.raises(ValidationError):
        services.deal_move(deal=deal, stage=stage("negotiation"), at=T0 + days(1))
    with pytest.raises(ValidationError) as err:
        services.deal_move(deal=deal, stage=stage("lost"), at=T0 + days(1))
    assert list(err.value.message_dict) == ["lost_reason"]
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"
    assert deal.stage_changes.count() == 1


def test_it_refuses_what_the_edited_required_fields_say(rep):
    proposal, negotiation = stage("proposal"), stage("negotiation")
    proposal.required_fields = []
    proposal.save()
    negotiation.required_fields = ["account"]
    negotiation.save()
    deal = make_deal(owner=rep, amount=0, expected_close_date=None)

    services.deal_move(deal=deal, stage=proposal, at=T0 + days(1))  # no longer refused
    with pytest.raises(ValidationError) as err:
        services.deal_move(deal=deal, stage=negotiation, at=T0 + days(2))
    assert list(err.value.message_dict) == ["account"]
    assert Deal.objects.get(pk=deal.pk).stage == proposal


def test_it_isolates_a_failing_firing_and_retries_it_next_run(clock, only_rule, rep, monkeypatch):
    from leakmap.automation import rules

    only_rule("overdue_follow_up")
    good = make_deal(owner=rep, name="Good", next_follow_up=T0 + days(1))
    broken = make_deal(owner=rep, name="Broken", next_follow_up=T0 + days(1))
    real_log = services.activity_log

    def flaky(data):
        if data.deal.name == "Broken":
            raise ValidationError({"owner": "no"})
        return real_log(data)

    monkeypatch.setattr(rules.crm_services, "activity_log", flaky)
    result = clock.at(days(2)).run()
    assert [f.record_id for f in result.firings] == [good.pk]
    assert result.errors == 1
    assert not RuleFiring.objects.filter(record_id=broken.pk).exists()
    assert Activity.objects.filter(deal=broken).count() == 0

    monkeypatch.setattr(rules.crm_services, "activity_log", real_log)
    assert [f.record_id for f in clock.run().firings] == [broken.pk]
    assert Activity.objects.filter(kind="task").count() == 2


def test_it_spends_only_the_writes_of_each_firing_beyond_the_candidate_query(clock, only_rule, rep):
    only_rule("stage_sla", notify_manager=False)
    for _ in range(3):
        make_deal(owner=rep)
    clock.at(days(8))
    with CaptureQueriesContext(connection) as ctx:
        assert len(clock.run().firings) == 3
    # SAVEPOINT; the rules; [advisory lock]; the stages' SLAs; the candidate deals (owner,
    # manager and stage joined in); per firing: SAVEPOINT, INSERT ledger row, INSERT
    # notification, RELEASE; RELEASE SAVEPOINT.
    assert len(ctx.captured_queries) == 1 + 1 + (connection.vendor == "postgresql") + 2 + 3 * 4 + 1


def test_it_drops_the_mail_of_a_firing_whose_later_action_failed(
    clock,
    only_rule,
    team,
    rep,
    teammate,
    monkeypatch,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    from leakmap.automation import rules

    only_rule("lead_not_contacted", reassign=True)
    AssignmentRule.objects.create(name="East", team=team)
    rep.email = "alice@example.com"
    rep.save()
    lead = LeadFactory(owner=rep)

    def broken(*args, **kwargs):
        raise RuntimeError("assignment down")

    monkeypatch.setattr(rules, "assign_lead", broken)
    with django_capture_on_commit_callbacks(execute=True):
        result = clock.at(days(2)).run()
    assert (result.firings, result.errors) == ([], 1)
    assert Notification.objects.count() == 0
    assert mailoutbox == []

    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        assert [f.record_id for f in clock.run().firings] == [lead.pk]
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]
