from __future__ import annotations

from typing import Literal

from django.db import transaction
from ninja import Query, Router, Status

from leakmap.api import lookups
from leakmap.api.pagination import paginate
from leakmap.api.routers.common import ERRORS, ListParams, common_filters
from leakmap.api.schemas import (
    ConvertIn,
    DealOut,
    DisqualifyIn,
    Id,
    LeadIn,
    LeadOut,
    LeadPage,
    LeadPatch,
    Text,
)
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Lead

router = Router(tags=["leads"])


class LeadFilters(ListParams):
    status: Literal["new", "contacted", "qualified", "converted", "disqualified"] | None = None
    source: Text(100, 1) | None = None
    email: Text(254, 1) | None = None
    phone: Text(50, 1) | None = None
    ordering: Literal["created_at", "-created_at", "name", "-name"] = "created_at"


@router.get("/leads", response={200: LeadPage, **ERRORS})
def list_leads(request, filters: Query[LeadFilters]):
    qs = common_filters(selectors.visible_leads(request.auth), filters)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.source:
        qs = qs.filter(source__name=filters.source)
    if filters.email:
        qs = selectors.email_is(qs, filters.email)
    if filters.phone:
        qs = qs.filter(phone=filters.phone)
    if filters.q:
        qs = selectors.search(qs, filters.q, ("name", "company"))
    items, next_cursor = paginate(
        qs, ordering=filters.ordering, cursor=filters.cursor, limit=filters.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/leads", response={201: LeadOut, **ERRORS})
def create_lead(request, payload: LeadIn):
    user = request.auth
    with transaction.atomic():
        lead = services.lead_create(
            services.LeadInput(
                name=payload.name,
                owner=lookups.owner_for(user, payload.owner),
                source=lookups.source(payload.source),
                industry=lookups.industry(payload.industry),
                company=payload.company,
                email=payload.email,
                phone=payload.phone,
                title=payload.title,
                budget=payload.budget,
                product=payload.product,
                region=payload.region,
                created_at=payload.created_at,
                external_id=lookups.unused_external_id(Lead, payload.external_id),
                utm={
                    "utm_source": payload.utm_source,
                    "utm_medium": payload.utm_medium,
                    "utm_campaign": payload.utm_campaign,
                },
                referrer=payload.referrer,
            )
        )
    return Status(201, lead)


@router.get("/leads/{lead_id}", response={200: LeadOut, **ERRORS})
def get_lead(request, lead_id: Id):
    return lookups.get_visible(selectors.visible_leads(request.auth), lead_id)


@router.patch("/leads/{lead_id}", response={200: LeadOut, **ERRORS})
def update_lead(request, lead_id: Id, payload: LeadPatch):
    user = request.auth
    lead = policy.record_for_change(user, selectors.visible_leads(user), lead_id)
    data = payload.dict(exclude_unset=True)
    with transaction.atomic():
        status = data.pop("status", None)
        owner = data.pop("owner", None) if "owner" in data else False
        if "source" in data:
            data["source"] = lookups.source(data["source"])
        if "industry" in data:
            data["industry"] = lookups.industry(data["industry"])
        if "name" in data and data["name"] is None:
            data.pop("name")
        data = {
            k: ("" if v is None and k not in ("source", "industry", "budget") else v)
            for k, v in data.items()
        }
        if data:
            lead = services.lead_update(lead=lead, **data)
        if owner is not False:
            lead = services.lead_assign(lead=lead, owner=lookups.owner_for(user, owner))
        if status:
            lead = services.lead_set_status(lead=lead, status=status)
    return lookups.visible_or(selectors.visible_leads(user), lead)


@router.delete("/leads/{lead_id}", response={204: None, **ERRORS})
def delete_lead(request, lead_id: Id):
    lead = policy.record_for_delete(request.auth, selectors.visible_leads(request.auth), lead_id)
    services.lead_delete(lead=lead)
    return Status(204, None)


@router.post("/leads/{lead_id}/convert", response={201: DealOut, **ERRORS})
def convert_lead(request, lead_id: Id, payload: ConvertIn):
    user = request.auth
    lead = policy.record_for_change(user, selectors.visible_leads(user), lead_id)
    with transaction.atomic():
        deal = services.lead_convert(
            lead=lead,
            data=services.ConversionInput(
                deal_name=payload.deal_name,
                amount=payload.amount,
                account=lookups.account_ref(user, payload.account_id),
                account_name=payload.account_name,
                contact_name=payload.contact_name,
                expected_close_date=payload.expected_close_date,
                stage=lookups.stage(payload.stage, open_only=True) if payload.stage else None,
                owner=lookups.owner_for(user, payload.owner) if payload.owner else None,
            ),
            by=user,
            at=payload.at,
        )
    return Status(201, selectors.visible_deals(user).filter(pk=deal.pk).first() or deal)


@router.post("/leads/{lead_id}/disqualify", response={200: LeadOut, **ERRORS})
def disqualify_lead(request, lead_id: Id, payload: DisqualifyIn):
    lead = policy.record_for_change(request.auth, selectors.visible_leads(request.auth), lead_id)
    return services.lead_disqualify(lead=lead, reason=payload.reason)
