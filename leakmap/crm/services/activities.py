"""Activities: log, complete (a follow-up moves the deal's and lead's facts), edit, delete."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import events
from leakmap.crm.models import Activity, ActivityKind, Deal, Lead, LeadStatus
from leakmap.crm.services.common import _now
from leakmap.crm.services.facts import deals_refresh_facts, leads_refresh_facts


@dataclass(frozen=True, kw_only=True)
class ActivityInput:
    """What an activity says; activity_log validates it. It belongs to `deal`, `lead` or both
    (a deal's activity is also its lead's). With `done_at` it is a follow-up;
    `next_follow_up` is the deal's next one to schedule."""

    owner: User
    kind: str
    deal: Deal | None = None
    lead: Lead | None = None
    subject: str = ""
    due_at: dt.datetime | None = None
    done_at: dt.datetime | None = None
    notes: str = ""
    created_at: dt.datetime | None = None
    external_id: str | None = None
    next_follow_up: dt.datetime | None = None


@transaction.atomic
def activity_log(data: ActivityInput) -> Activity:
    """Record a call, e-mail, meeting, note or task. With `done_at` it is a follow-up: it moves
    the deal's and lead's follow-up facts. `next_follow_up` schedules the deal's next one."""
    kind, deal, lead, done_at = data.kind, data.deal, data.lead, data.done_at
    next_follow_up = data.next_follow_up
    if kind not in ActivityKind.values:
        raise ValidationError({"kind": _("Unknown activity kind “%(k)s”.") % {"k": kind}})
    if deal is None and lead is None:
        raise ValidationError({"deal": _("An activity belongs to a deal or a lead.")})
    if deal is not None and lead is None:
        lead = deal.lead
    created_at = _now(data.created_at)
    activity = Activity.objects.create(
        external_id=data.external_id or None,
        kind=kind,
        subject=data.subject[:200],
        owner=data.owner,
        deal=deal,
        lead=lead,
        due_at=data.due_at,
        done_at=done_at,
        notes=data.notes,
        created_at=created_at,
    )
    if done_at is not None:
        _record_follow_up(deal=deal, lead=lead, at=done_at)
    if deal is not None and next_follow_up is not None:
        Deal.objects.filter(pk=deal.pk).update(next_follow_up=next_follow_up)
        deal.next_follow_up = next_follow_up
    events.emit(events.activity_logged, activity=activity)
    return activity


@transaction.atomic
def activity_complete(*, activity: Activity, done_at: dt.datetime | None = None) -> Activity:
    if activity.done_at is not None:
        raise ValidationError({"done_at": _("This activity is already done.")})
    activity.done_at = _now(done_at)
    activity.save(update_fields=["done_at"])
    _record_follow_up(deal=activity.deal, lead=activity.lead, at=activity.done_at)
    return activity


def _record_follow_up(*, deal: Deal | None, lead: Lead | None, at: dt.datetime) -> None:
    if deal is not None:
        deal = Deal.objects.select_for_update().get(pk=deal.pk)
        deal.follow_up_count += 1
        if deal.last_follow_up_at is None or at > deal.last_follow_up_at:
            deal.last_follow_up_at = at
        # A follow-up clears "needs attention" and a passed follow-up date.
        deal.needs_attention = False
        if deal.next_follow_up is not None and deal.next_follow_up <= at:
            deal.next_follow_up = None
        deal.save(
            update_fields=[
                "follow_up_count",
                "last_follow_up_at",
                "needs_attention",
                "next_follow_up",
            ]
        )
    if lead is not None:
        updates: dict = {}
        if lead.first_contacted_at is None or at < lead.first_contacted_at:
            updates["first_contacted_at"] = at
        if lead.status == LeadStatus.NEW:
            updates["status"] = LeadStatus.CONTACTED
        if updates:
            Lead.objects.filter(pk=lead.pk).update(**updates)
            for k, v in updates.items():
                setattr(lead, k, v)


@transaction.atomic
def activity_update(*, activity: Activity, **fields) -> Activity:
    """Edit what an activity says and when it is due. Completing goes through activity_complete,
    so the follow-up facts move with it."""
    allowed = {"subject", "notes", "due_at", "kind"}
    bad = fields.keys() - allowed
    if bad:
        raise ValidationError({f: _("This field cannot be changed here.") for f in bad})
    if "kind" in fields and fields["kind"] not in ActivityKind.values:
        raise ValidationError({"kind": _("Unknown activity kind “%(k)s”.") % {"k": fields["kind"]}})
    for name, value in fields.items():
        setattr(activity, name, value)
    activity.subject = activity.subject[:200]
    activity.save()
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity) -> None:
    deal_id, lead_id, was_follow_up = activity.deal_id, activity.lead_id, activity.done_at
    activity.delete()
    # A deleted follow-up no longer counts: recompute the facts it moved.
    if was_follow_up is not None:
        if deal_id is not None:
            deals_refresh_facts([deal_id])
        if lead_id is not None:
            leads_refresh_facts([lead_id])
