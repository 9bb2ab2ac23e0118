from __future__ import annotations

from typing import Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from ninja import Query, Router, Status

from leakmap.api import lookups
from leakmap.api.pagination import paginate
from leakmap.api.routers.common import ERRORS, ListParams, common_filters
from leakmap.api.schemas import (
    ActivityIn,
    ActivityKindIn,
    ActivityOut,
    ActivityPage,
    ActivityPatch,
    CompleteIn,
    Id,
)
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Activity

router = Router(tags=["activities"])


class ActivityFilters(ListParams):
    deal_id: Id | None = None
    lead_id: Id | None = None
    kind: ActivityKindIn | None = None
    done: bool | None = None
    ordering: Literal["created_at", "-created_at"] = "created_at"


def _activity_for_change(user, activity_id: int):
    return policy.record_for_change(user, selectors.visible_activities(user), activity_id)


@router.get("/activities", response={200: ActivityPage, **ERRORS})
def list_activities(request, filters: Query[ActivityFilters]):
    qs = common_filters(selectors.visible_activities(request.auth), filters)
    if filters.deal_id:
        qs = qs.filter(deal_id=filters.deal_id)
    if filters.lead_id:
        qs = qs.filter(lead_id=filters.lead_id)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.done is not None:
        qs = qs.filter(done_at__isnull=not filters.done)
    if filters.q:
        qs = qs.filter(subject__icontains=filters.q)
    items, next_cursor = paginate(
        qs, ordering=filters.ordering, cursor=filters.cursor, limit=filters.limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/activities", response={201: ActivityOut, **ERRORS})
def log_activity(request, payload: ActivityIn):
    user = request.auth
    if payload.deal_id is None and payload.lead_id is None:
        raise ValidationError({"deal_id": _("An activity belongs to a deal or a lead.")})
    with transaction.atomic():
        activity = services.activity_log(
            services.ActivityInput(
                owner=lookups.owner_for(user, payload.owner),
                kind=payload.kind,
                deal=lookups.deal_ref(user, payload.deal_id),
                lead=lookups.lead_ref(user, payload.lead_id),
                subject=payload.subject,
                due_at=payload.due_at,
                done_at=payload.done_at,
                notes=payload.notes,
                created_at=payload.created_at,
                external_id=lookups.unused_external_id(Activity, payload.external_id),
                next_follow_up=payload.next_follow_up,
            )
        )
    return Status(201, activity)


@router.get("/activities/{activity_id}", response={200: ActivityOut, **ERRORS})
def get_activity(request, activity_id: Id):
    return lookups.get_visible(selectors.visible_activities(request.auth), activity_id)


@router.patch("/activities/{activity_id}", response={200: ActivityOut, **ERRORS})
def update_activity(request, activity_id: Id, payload: ActivityPatch):
    activity = _activity_for_change(request.auth, activity_id)
    fields = {
        k: ("" if v is None and k in ("subject", "notes") else v)
        for k, v in payload.dict(exclude_unset=True).items()
        if not (k == "kind" and v is None)
    }
    if fields:
        activity = services.activity_update(activity=activity, **fields)
    return activity


@router.post("/activities/{activity_id}/complete", response={200: ActivityOut, **ERRORS})
def complete_activity(request, activity_id: Id, payload: CompleteIn):
    activity = _activity_for_change(request.auth, activity_id)
    return services.activity_complete(activity=activity, done_at=payload.done_at)


@router.delete("/activities/{activity_id}", response={204: None, **ERRORS})
def delete_activity(request, activity_id: Id):
    activity = policy.record_for_delete(
        request.auth, selectors.visible_activities(request.auth), activity_id
    )
    services.activity_delete(activity=activity)
    return Status(204, None)
