"""Bulk actions (crm.services.batch): all or nothing, through the single-record services."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from leakmap.crm import services
from leakmap.crm.models import Contact, Deal, StageChange
from tests.factories import make_deal, stage


def test_it_names_at_most_ten_refused_records_and_counts_the_rest(db, rep, outsider):
    theirs = [services.contact_create(name=f"C{i:02d}", owner=outsider) for i in range(12)]
    with pytest.raises(PermissionDenied) as refusal:
        services.records_bulk_delete(actor=rep, records=theirs)
    message = str(refusal.value)
    assert "C09" in message and "C10" not in message and "2" in message
    assert Contact.objects.count() == 12


def test_it_lets_a_manager_act_on_the_teams_deals(db, manager, rep, teammate):
    deals = [make_deal(owner=rep), make_deal(owner=teammate)]
    assert services.deals_bulk_move(actor=manager, deals=deals, stage=stage("proposal")) == 2
    assert set(Deal.objects.values_list("stage__key", flat=True)) == {"proposal"}
    assert StageChange.objects.filter(by=manager, to_stage__key="proposal").count() == 2


def test_it_closes_no_deal_lost_in_bulk(db, rep):
    deal = make_deal(owner=rep)
    with pytest.raises(ValidationError):
        services.deals_bulk_move(actor=rep, deals=[deal], stage=stage("lost"))
    deal.refresh_from_db()
    assert deal.stage.key == "qualification"


def test_it_undoes_the_records_already_changed_when_a_later_one_is_refused(db, rep):
    target = stage("negotiation")
    target.required_fields = ["contact"]
    target.save()
    contact = services.contact_create(name="王芳", owner=rep)
    first = make_deal(owner=rep, name="先动", contact=contact)
    second = make_deal(owner=rep, name="缺联系人")
    with pytest.raises(ValidationError) as refusal:
        services.deals_bulk_move(actor=rep, deals=[first, second], stage=target)
    assert "缺联系人" in " ".join(refusal.value.messages)
    first.refresh_from_db()
    assert first.stage.key == "qualification"
    assert not StageChange.objects.filter(to_stage=target).exists()
