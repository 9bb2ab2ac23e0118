"""The lead intake decides a new lead's owner once (crm.services.lead_create): the owner
given, else the assignment rules when the channel asks, else the channel's fallback owner, else
none. lead.created only notifies."""

from __future__ import annotations

import pytest

from leakmap.api import webforms
from leakmap.api.models import WebForm
from leakmap.automation import assignment
from leakmap.automation.models import AssignmentRule, LeadAssignment
from leakmap.crm import events, services
from leakmap.crm.models import Lead
from tests.factories import SourceFactory


@pytest.fixture
def web_form(team, rep):
    # A rule that would take the form's leads, were it asked.
    AssignmentRule.objects.create(name="官网", team=team)
    return WebForm.objects.create(
        name="官网试用申请",
        slug="trial",
        fields=["company", "email"],
        source=SourceFactory(name="官网"),
        owner=None,
        use_assignment_rules=False,
    )


def submit(form: WebForm, email: str) -> Lead:
    outcome = webforms.submit(form, {"name": "张三", "email": email}, query={}, referer_header="")
    assert outcome.created
    return outcome.lead


def test_a_web_form_at_its_defaults_gives_its_leads_to_the_rules(
    web_form, rep, django_capture_on_commit_callbacks
):
    assert web_form.owner is None and not web_form.use_assignment_rules
    with django_capture_on_commit_callbacks(execute=True):
        lead = submit(web_form, "a@example.com")
    # A form nobody configured still reaches a rep: the assignment rules decide.
    assert Lead.objects.get(pk=lead.pk).owner == rep
    assert LeadAssignment.objects.get().lead == lead


def test_a_web_form_lead_no_rule_takes_goes_to_the_forms_owner(
    web_form, manager, django_capture_on_commit_callbacks
):
    AssignmentRule.objects.all().delete()
    web_form.owner = manager
    web_form.use_assignment_rules = True
    web_form.full_clean()  # an owner with the rules on is the fallback, not a contradiction
    web_form.save()
    seen = []

    def receiver(sender=None, *, lead, **kwargs):
        seen.append(lead.owner)

    events.lead_created.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            lead = submit(web_form, "a@example.com")
    finally:
        events.lead_created.disconnect(receiver)
    assert Lead.objects.get(pk=lead.pk).owner == manager
    assert seen == [manager]


def test_a_web_form_lead_no_rule_takes_and_no_owner_waits_for_a_manager(
    web_form, django_capture_on_commit_callbacks
):
    AssignmentRule.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        lead = submit(web_form, "a@example.com")
    assert Lead.objects.get(pk=lead.pk).owner is None


def test_a_web_form_with_an_owner_and_the_rules_off_gives_that_owner_every_lead(
    web_form, manager, django_capture_on_commit_callbacks
):
    web_form.owner = manager
    web_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        lead = submit(web_form, "a@example.com")
    assert Lead.objects.get(pk=lead.pk).owner == manager
    assert not LeadAssignment.objects.exists()


def test_it_assigns_a_web_form_lead_by_the_rules_when_the_form_asks(
    web_form, rep, django_capture_on_commit_callbacks
):
    web_form.use_assignment_rules = True
    web_form.save()
    seen = []

    def receiver(sender=None, *, lead, **kwargs):
        seen.append(lead.owner)

    events.lead_created.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            lead = submit(web_form, "a@example.com")
    finally:
        events.lead_created.disconnect(receiver)
    assert lead.owner == rep
    assert LeadAssignment.objects.get().lead == lead
    # The event goes out with the owner already decided.
    assert seen == [rep]


def test_it_leaves_a_lead_unowned_without_the_rules_from_any_channel(
    web_form, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        lead = services.lead_create(services.LeadInput(name="李四"))
    assert Lead.objects.get(pk=lead.pk).owner is None


def test_it_keeps_the_lead_unowned_when_the_rules_fail(
    web_form, monkeypatch, django_capture_on_commit_callbacks
):
    web_form.use_assignment_rules = True
    web_form.save()

    def broken(*args, **kwargs):
        raise RuntimeError("rules table unreadable")

    monkeypatch.setattr(assignment, "assign_unowned_leads", broken)
    with django_capture_on_commit_callbacks(execute=True):
        lead = submit(web_form, "a@example.com")
    assert Lead.objects.get(pk=lead.pk).owner is None
