"""The lead intake decides a new lead's owner once (crm.services.lead_create): the owner
given, else the assignment rules when the channel asks, else none. lead.created only notifies."""

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


def test_it_leaves_a_web_form_lead_unassigned_without_owner_or_rules(
    web_form, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        lead = submit(web_form, "a@example.com")
    # Committed, and every lead.created subscriber has run: still nobody's, for managers to see.
    assert Lead.objects.get(pk=lead.pk).owner is None
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
