from __future__ import annotations

from typing import Literal

from django.db import transaction
from ninja import Query, Router, Status

from leakmap.api import lookups
from leakmap.api.pagination import paginate
from leakmap.api.routers.common import ERRORS, ListParams, common_filters
from leakmap.api.schemas import (
    AccountIn,
    AccountOut,
    AccountPage,
    AccountPatch,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    Id,
)
from leakmap.crm import policy, selectors, services
from leakmap.crm.text_search import containing

router = Router(tags=["accounts and contacts"])


class AccountFilters(ListParams):
    ordering: Literal["created_at", "-created_at", "name", "-name"] = "created_at"


class ContactFilters(ListParams):
    account_id: Id | None = None
    ordering: Literal["created_at", "-created_at", "name", "-name"] = "created_at"


def _accounts(user):
    return selectors.visible_accounts(user).select_related("industry", "owner")


def _contacts(user):
    return selectors.visible_contacts(user).select_related("owner")


@router.get("/accounts", response={200: AccountPage, **ERRORS})
def list_accounts(request, filters: Query[AccountFilters]):
    qs = common_filters(_accounts(request.auth), filters)
    if filters.q:
        qs = containing(qs, filters.q, ("name",))
    items, next_cursor = paginate(
        qs, ordering=filters.ordering, cursor=filters.cursor, limit=filters.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/accounts", response={201: AccountOut, **ERRORS})
def create_account(request, payload: AccountIn):
    user = request.auth
    with transaction.atomic():
        account = services.account_create(
            name=payload.name,
            owner=lookups.owner_for(user, payload.owner),
            industry=lookups.industry(payload.industry),
            created_at=payload.created_at,
        )
    return Status(201, account)


@router.get("/accounts/{account_id}", response={200: AccountOut, **ERRORS})
def get_account(request, account_id: Id):
    return lookups.get_visible(_accounts(request.auth), account_id)


@router.patch("/accounts/{account_id}", response={200: AccountOut, **ERRORS})
def update_account(request, account_id: Id, payload: AccountPatch):
    user = request.auth
    account = policy.record_for_change(user, _accounts(user), account_id)
    fields = {}
    for key, value in payload.dict(exclude_unset=True).items():
        if key == "owner":
            fields["owner"] = lookups.owner_for(user, value)
        elif key == "industry":
            fields["industry"] = lookups.industry(value)
        elif value is not None:
            fields[key] = value
    with transaction.atomic():
        if fields:
            services.account_update(account=account, **fields)
    return lookups.visible_or(_accounts(user), account)


@router.delete("/accounts/{account_id}", response={204: None, **ERRORS})
def delete_account(request, account_id: Id):
    services.account_delete(
        account=policy.record_for_delete(request.auth, _accounts(request.auth), account_id)
    )
    return Status(204, None)


@router.get("/contacts", response={200: ContactPage, **ERRORS})
def list_contacts(request, filters: Query[ContactFilters]):
    qs = common_filters(_contacts(request.auth), filters)
    if filters.account_id:
        qs = qs.filter(account_id=filters.account_id)
    if filters.q:
        qs = containing(qs, filters.q, ("name",))
    items, next_cursor = paginate(
        qs, ordering=filters.ordering, cursor=filters.cursor, limit=filters.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/contacts", response={201: ContactOut, **ERRORS})
def create_contact(request, payload: ContactIn):
    user = request.auth
    with transaction.atomic():
        contact = services.contact_create(
            name=payload.name,
            account=lookups.account_ref(user, payload.account_id),
            email=payload.email,
            phone=payload.phone,
            title=payload.title,
            owner=lookups.owner_for(user, payload.owner),
            created_at=payload.created_at,
        )
    return Status(201, contact)


@router.get("/contacts/{contact_id}", response={200: ContactOut, **ERRORS})
def get_contact(request, contact_id: Id):
    return lookups.get_visible(_contacts(request.auth), contact_id)


@router.patch("/contacts/{contact_id}", response={200: ContactOut, **ERRORS})
def update_contact(request, contact_id: Id, payload: ContactPatch):
    user = request.auth
    contact = policy.record_for_change(user, _contacts(user), contact_id)
    fields = {}
    for key, value in payload.dict(exclude_unset=True).items():
        if key == "owner":
            fields["owner"] = lookups.owner_for(user, value)
        elif key == "account_id":
            fields["account"] = lookups.account_ref(user, value)
        elif key == "name" and value is None:
            continue
        else:
            fields[key] = "" if value is None else value
    with transaction.atomic():
        if fields:
            services.contact_update(contact=contact, **fields)
    return lookups.visible_or(_contacts(user), contact)


@router.delete("/contacts/{contact_id}", response={204: None, **ERRORS})
def delete_contact(request, contact_id: Id):
    services.contact_delete(
        contact=policy.record_for_delete(request.auth, _contacts(request.auth), contact_id)
    )
    return Status(204, None)
