"""Leads: the intake (create and first owner), edits, status, conversion to a deal, delete."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import events
from leakmap.crm.models import (
    Account,
    Activity,
    Contact,
    Deal,
    Industry,
    Lead,
    LeadStatus,
    Source,
    Stage,
)
from leakmap.crm.services.common import _now
from leakmap.crm.services.deals import DealInput, deal_create
from leakmap.crm.services.facts import deals_refresh_facts, deals_refresh_lead_source

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LeadInput:
    """What a channel says about a new lead; lead_create validates it. `utm` holds the
    utm_source / utm_medium / utm_campaign a web form or the API saw."""

    name: str
    owner: User | None = None
    source: Source | None = None
    company: str = ""
    email: str = ""
    phone: str = ""
    industry: Industry | None = None
    title: str = ""
    budget: Decimal | None = None
    product: str = ""
    region: str = ""
    created_at: dt.datetime | None = None
    external_id: str | None = None
    utm: dict[str, str] | None = None
    referrer: str = ""


@transaction.atomic
def lead_create(
    data: LeadInput, *, use_assignment_rules: bool = False, fallback_owner: User | None = None
) -> Lead:
    """The lead intake of every channel that makes one lead (web, API, web forms): create it and
    decide its owner once. The owner given, else the assignment rules when the channel asks
    for them (web forms), else `fallback_owner` (a web form's configured owner), else none: an
    unassigned lead, which managers see. lead.created goes out with that owner; its
    subscribers only notify."""
    if not data.name or not data.name.strip():
        raise ValidationError({"name": _("A lead needs a name.")})
    if data.budget is not None and data.budget < 0:
        raise ValidationError({"budget": _("The budget cannot be negative.")})
    utm = data.utm or {}
    lead = Lead(
        external_id=data.external_id or None,
        name=data.name.strip(),
        company=data.company,
        email=data.email,
        phone=data.phone,
        source=data.source,
        industry=data.industry,
        title=data.title,
        budget=data.budget,
        product=data.product,
        region=data.region,
        owner=data.owner,
        status=LeadStatus.NEW,
        created_at=_now(data.created_at),
        utm_source=utm.get("utm_source", "")[:100],
        utm_medium=utm.get("utm_medium", "")[:100],
        utm_campaign=utm.get("utm_campaign", "")[:100],
        referrer=data.referrer[:500],
    )
    lead.full_clean(exclude=["owner", "source", "industry"])
    lead.save()
    if lead_intake_assign([lead.pk], use_assignment_rules=use_assignment_rules):
        lead.refresh_from_db(fields=["owner"])
    elif lead.owner_id is None and fallback_owner is not None:
        lead_assign(lead=lead, owner=fallback_owner)
    events.emit(events.lead_created, lead=lead)
    return lead


def lead_intake_assign(lead_ids: list[int], *, use_assignment_rules: bool) -> int:
    """The intake's one decision on an owner nobody named: new leads without an owner go to the
    assignment rules only when the channel asks (lead_create's use_assignment_rules; an import
    asks for its unowned rows). Returns how many got an owner. When the rules fail, the leads
    stay unowned, where managers see them, rather than undoing the intake."""
    if not use_assignment_rules or not lead_ids:
        return 0
    # automation sits above crm (its rules call these services): imported where used.
    from leakmap.automation import assignment

    try:
        with transaction.atomic():
            return assignment.assign_unowned_leads(list(lead_ids))
    except Exception:
        log.exception("lead assignment failed for new leads %s", list(lead_ids)[:10])
        return 0


@transaction.atomic
def lead_update(*, lead: Lead, **fields) -> Lead:
    """Edit a lead's descriptive fields. Status moves go through convert/disqualify."""
    forbidden = {"status", "converted_at", "first_contacted_at", "id", "pk"} & fields.keys()
    if forbidden:
        raise ValidationError({f: _("This field is set by the system.") for f in forbidden})
    for name, value in fields.items():
        setattr(lead, name, value)
    lead.full_clean(exclude=["owner", "source", "industry"])
    lead.save()
    if {"source", "source_id"} & fields.keys():
        deals_refresh_lead_source([lead.pk])
    return lead


@transaction.atomic
def lead_assign(*, lead: Lead, owner: User | None) -> Lead:
    lead.owner = owner
    lead.save(update_fields=["owner"])
    return lead


def leads_assign(*, lead_ids, owner: User | int) -> int:
    """Bulk twin of lead_assign (assignment rules, imports): one UPDATE. Only the owner moves;
    no history or fact hangs on it."""
    owner_id = owner if isinstance(owner, int) else owner.pk
    return Lead.objects.filter(pk__in=list(lead_ids)).update(owner_id=owner_id)


@transaction.atomic
def lead_disqualify(*, lead: Lead, reason: str) -> Lead:
    if not reason or not reason.strip():
        raise ValidationError({"disqualified_reason": _("Say why the lead is disqualified.")})
    if lead.status == LeadStatus.CONVERTED:
        raise ValidationError({"status": _("A converted lead cannot be disqualified.")})
    lead.status = LeadStatus.DISQUALIFIED
    lead.disqualified_reason = reason.strip()[:200]
    lead.save(update_fields=["status", "disqualified_reason"])
    return lead


@transaction.atomic
def lead_set_status(*, lead: Lead, status: str) -> Lead:
    """new / contacted / qualified. Converting and disqualifying have their own services."""
    if status not in (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED):
        raise ValidationError(
            {"status": _("Use convert or disqualify for status %(s)s.") % {"s": status}}
        )
    if lead.status == LeadStatus.CONVERTED:
        raise ValidationError({"status": _("The lead is already converted.")})
    lead.status = status
    if status != LeadStatus.DISQUALIFIED:
        lead.disqualified_reason = ""
    lead.save(update_fields=["status", "disqualified_reason"])
    return lead


@dataclass(frozen=True, kw_only=True)
class ConversionInput:
    """What a conversion may say about the deal, account and contact it makes; what it leaves
    empty comes from the lead (name, budget, company, owner). `external_id` is the deal's."""

    deal_name: str = ""
    amount: Decimal | None = None
    account: Account | None = None
    account_name: str = ""
    contact_name: str = ""
    expected_close_date: dt.date | None = None
    stage: Stage | None = None
    owner: User | None = None
    external_id: str | None = None


@transaction.atomic
def lead_convert(
    lead: Lead,
    data: ConversionInput = ConversionInput(),
    *,
    by: User | None = None,
    at: dt.datetime | None = None,
) -> Deal:
    """Lead → account + contact + deal, in one step, by `by` at `at`. Source, industry and owner
    carry over."""
    deal_name, amount, account = data.deal_name, data.amount, data.account
    account_name, contact_name = data.account_name, data.contact_name
    expected_close_date, stage, owner = data.expected_close_date, data.stage, data.owner
    external_id = data.external_id
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if lead.status == LeadStatus.CONVERTED:
        raise ValidationError({"status": _("This lead is already converted.")})
    if lead.status == LeadStatus.DISQUALIFIED:
        raise ValidationError({"status": _("A disqualified lead cannot be converted.")})
    at = _now(at)
    if at < lead.created_at:
        raise ValidationError({"at": _("A lead cannot be converted before it was created.")})
    owner = owner or lead.owner or by
    if owner is None:
        raise ValidationError({"owner": _("The deal needs an owner.")})
    if account is None:
        account = Account.objects.create(
            name=(account_name or lead.company or lead.name).strip(),
            industry=lead.industry,
            owner=owner,
            created_at=at,
        )
    contact = Contact.objects.create(
        account=account,
        name=(contact_name or lead.name).strip(),
        email=lead.email,
        phone=lead.phone,
        title=lead.title,
        owner=owner,
        created_at=at,
    )
    deal = deal_create(
        DealInput(
            name=deal_name or f"{account.name} - {lead.product or lead.name}",
            owner=owner,
            amount=amount if amount is not None else (lead.budget or Decimal("0")),
            stage=stage,
            lead=lead,
            account=account,
            contact=contact,
            source=lead.source,
            industry=lead.industry,
            expected_close_date=expected_close_date,
            created_at=at,
            external_id=external_id,
        ),
        by=by,
    )
    lead.status = LeadStatus.CONVERTED
    lead.converted_at = at
    if lead.owner_id is None:
        lead.owner = owner
    lead.save(update_fields=["status", "converted_at", "owner"])
    events.emit(events.lead_converted, lead=lead, deal=deal)
    return deal


@transaction.atomic
def lead_delete(*, lead: Lead) -> None:
    # Activities on the lead go with it; deals made from it stay (their lead becomes empty).
    deal_ids = list(
        Activity.objects.filter(lead=lead, deal__isnull=False).values_list("deal_id", flat=True)
    )
    Deal.objects.filter(lead=lead).update(lead_source=None)  # their lead becomes empty
    lead.delete()
    if deal_ids:
        deals_refresh_facts(deal_ids)
