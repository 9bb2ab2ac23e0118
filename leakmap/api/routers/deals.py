from __future__ import annotations

from typing import Literal

from django.db import transaction
from ninja import Query, Router, Status

from leakmap.api import lookups
from leakmap.api.pagination import paginate
from leakmap.api.routers.common import ERRORS, ListParams, common_filters
from leakmap.api.schemas import (
    DealIn,
    DealOut,
    DealPage,
    DealPatch,
    Id,
    LostIn,
    MoveIn,
    Text,
    WonIn,
)
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Deal
from leakmap.crm.text_search import containing

router = Router(tags=["deals"])


class DealFilters(ListParams):
    stage: Text(50, 1) | None = None
    status: Literal["open", "won", "lost"] | None = None
    source: Text(100, 1) | None = None
    account_id: Id | None = None
    lead_id: Id | None = None
    ordering: Literal["created_at", "-created_at", "amount", "-amount", "name", "-name"] = (
        "created_at"
    )


def _deal(user, deal_id: int):
    """The deal at the URL, for a write (404 unseen, 403 seen but not the caller's to change)."""
    return policy.record_for_change(user, selectors.visible_deals(user), deal_id)


def _fresh(user, deal_id: int):
    # Re-read through the selector so the response shows every related name as stored.
    return lookups.get_visible(selectors.visible_deals(user).select_related("industry"), deal_id)


def _written(user, deal):
    return lookups.visible_or(selectors.visible_deals(user).select_related("industry"), deal)


@router.get("/deals", response={200: DealPage, **ERRORS})
def list_deals(request, filters: Query[DealFilters]):
    qs = common_filters(selectors.visible_deals(request.auth).select_related("industry"), filters)
    if filters.stage:
        qs = qs.filter(stage__key=filters.stage)
    if filters.status:
        qs = qs.filter(stage__kind=filters.status)
    if filters.source:
        qs = qs.filter(source__name=filters.source)
    if filters.account_id:
        qs = qs.filter(account_id=filters.account_id)
    if filters.lead_id:
        qs = qs.filter(lead_id=filters.lead_id)
    if filters.q:
        qs = containing(qs, filters.q, ("name",))
    items, next_cursor = paginate(
        qs, ordering=filters.ordering, cursor=filters.cursor, limit=filters.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/deals", response={201: DealOut, **ERRORS})
def create_deal(request, payload: DealIn):
    user = request.auth
    with transaction.atomic():
        deal = services.deal_create(
            services.DealInput(
                name=payload.name,
                owner=lookups.owner_for(user, payload.owner),
                amount=payload.amount,
                stage=lookups.stage(payload.stage, open_only=True) if payload.stage else None,
                lead=lookups.lead_ref(user, payload.lead_id),
                account=lookups.account_ref(user, payload.account_id),
                contact=lookups.contact_ref(user, payload.contact_id),
                source=lookups.source(payload.source),
                industry=lookups.industry(payload.industry),
                expected_close_date=payload.expected_close_date,
                next_follow_up=payload.next_follow_up,
                created_at=payload.created_at,
                external_id=lookups.unused_external_id(Deal, payload.external_id),
            ),
            by=user,
        )
    return Status(201, _fresh(user, deal.pk))


@router.get("/deals/{deal_id}", response={200: DealOut, **ERRORS})
def get_deal(request, deal_id: Id):
    return _fresh(request.auth, deal_id)


@router.patch("/deals/{deal_id}", response={200: DealOut, **ERRORS})
def update_deal(request, deal_id: Id, payload: DealPatch):
    user = request.auth
    deal = _deal(user, deal_id)
    data = payload.dict(exclude_unset=True)
    fields = {}
    for key, value in data.items():
        if key == "owner":
            fields["owner"] = lookups.owner_for(user, value)
        elif key == "account_id":
            fields["account"] = lookups.account_ref(user, value)
        elif key == "contact_id":
            fields["contact"] = lookups.contact_ref(user, value)
        elif key == "source":
            fields["source"] = lookups.source(value)
        elif key == "industry":
            fields["industry"] = lookups.industry(value)
        elif key in ("name", "amount") and value is None:
            continue
        else:
            fields[key] = value
    if fields:
        deal = services.deal_update(deal=deal, **fields)
    return _written(user, deal)


@router.delete("/deals/{deal_id}", response={204: None, **ERRORS})
def delete_deal(request, deal_id: Id):
    deal = policy.record_for_delete(request.auth, selectors.visible_deals(request.auth), deal_id)
    services.deal_delete(deal=deal)
    return Status(204, None)


@router.post("/deals/{deal_id}/move", response={200: DealOut, **ERRORS})
def move_deal(request, deal_id: Id, payload: MoveIn):
    user = request.auth
    deal = _deal(user, deal_id)
    services.deal_move(
        deal=deal,
        stage=lookups.stage(payload.stage, pipeline_id=deal.pipeline_id),
        by=user,
        at=payload.at,
        lost_reason=lookups.lost_reason(payload.lost_reason),
        competitor=lookups.competitor(payload.competitor),
        lost_notes=payload.notes,
    )
    return _fresh(user, deal_id)


@router.post("/deals/{deal_id}/won", response={200: DealOut, **ERRORS})
def close_won(request, deal_id: Id, payload: WonIn):
    user = request.auth
    services.deal_close_won(deal=_deal(user, deal_id), by=user, at=payload.at)
    return _fresh(user, deal_id)


@router.post("/deals/{deal_id}/lost", response={200: DealOut, **ERRORS})
def close_lost(request, deal_id: Id, payload: LostIn):
    user = request.auth
    deal = _deal(user, deal_id)
    with transaction.atomic():
        services.deal_close_lost(
            deal=deal,
            lost_reason=lookups.lost_reason(payload.lost_reason),
            competitor=lookups.competitor(payload.competitor),
            notes=payload.notes,
            by=user,
            at=payload.at,
        )
    return _fresh(user, deal_id)
