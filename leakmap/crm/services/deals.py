"""Deals: create, edit, move between stages, close, delete; a stage's required fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import events
from leakmap.crm.models import (
    Account,
    Competitor,
    Contact,
    Deal,
    Industry,
    Lead,
    LostReason,
    Pipeline,
    Source,
    Stage,
    StageChange,
    StageKind,
)
from leakmap.crm.services.common import _now, default_pipeline, first_open_stage
from leakmap.crm.services.facts import (
    _reach_seconds,
    deals_refresh_stage_facts,
    leads_refresh_facts,
    stage_entries_refresh_facts,
)

# Deal fields a stage may require, with the test for "filled".
REQUIRABLE_FIELDS = {
    "amount": lambda deal: deal.amount is not None and deal.amount > 0,
    "expected_close_date": lambda deal: deal.expected_close_date is not None,
    "account": lambda deal: deal.account_id is not None,
    "contact": lambda deal: deal.contact_id is not None,
    "source": lambda deal: deal.source_id is not None,
    "industry": lambda deal: deal.industry_id is not None,
    "next_follow_up": lambda deal: deal.next_follow_up is not None,
}


def _missing_required_fields(deal: Deal, stage: Stage) -> list[str]:
    """Fields required to enter `stage`. Reaching an open stage (or won) counts as passing every
    open stage before it, so their requirements apply too; lost only asks for its own."""
    if stage.kind == StageKind.LOST:
        stages = [stage]
    else:
        stages = list(
            Stage.objects.filter(pipeline_id=stage.pipeline_id, order__lte=stage.order).exclude(
                kind=StageKind.LOST
            )
        )
    required: list[str] = []
    for s in stages:
        for field in s.required_fields or []:
            if field not in required:
                required.append(field)
    return [f for f in required if f in REQUIRABLE_FIELDS and not REQUIRABLE_FIELDS[f](deal)]


def deal_missing_fields(*, deal: Deal, stage: Stage) -> list[str]:
    """The deal fields that must be filled before `deal` may enter `stage`, in the order the
    stages require them: what a form asks for before a move."""
    return _missing_required_fields(deal, stage)


def _check_required_fields(deal: Deal, stage: Stage) -> None:
    missing = _missing_required_fields(deal, stage)
    if missing:
        raise ValidationError(
            {
                f: _("%(field)s is required to enter stage “%(stage)s”.")
                % {"field": Deal._meta.get_field(f).verbose_name, "stage": stage.label}
                for f in missing
            }
        )


@dataclass(frozen=True, kw_only=True)
class DealInput:
    """What a new deal says; deal_create validates it. Without a stage the deal starts in the
    first open stage of `pipeline` (the default pipeline unless given); source and industry
    default to the lead's."""

    name: str
    owner: User
    amount: Decimal = Decimal("0")
    stage: Stage | None = None
    pipeline: Pipeline | None = None
    lead: Lead | None = None
    account: Account | None = None
    contact: Contact | None = None
    source: Source | None = None
    industry: Industry | None = None
    expected_close_date: dt.date | None = None
    next_follow_up: dt.datetime | None = None
    created_at: dt.datetime | None = None
    external_id: str | None = None


@transaction.atomic
def deal_create(data: DealInput, *, by: User | None = None) -> Deal:
    """A new deal in an open stage (the pipeline's first unless given), with its first history
    row, written as `by`'s. Closing goes through deal_close_won / deal_close_lost afterwards."""
    if not data.name or not data.name.strip():
        raise ValidationError({"name": _("A deal needs a name.")})
    if data.amount is None or data.amount < 0:
        raise ValidationError({"amount": _("The amount cannot be negative.")})
    if data.owner is None:
        raise ValidationError({"owner": _("The deal needs an owner.")})
    stage, lead = data.stage, data.lead
    pipeline = stage.pipeline if stage is not None else (data.pipeline or default_pipeline())
    stage = stage or first_open_stage(pipeline)
    if stage.kind != StageKind.OPEN:
        raise ValidationError(
            {"stage": _("A new deal starts in an open stage; close it afterwards.")}
        )
    created_at = _now(data.created_at)
    deal = Deal(
        external_id=data.external_id or None,
        name=data.name.strip(),
        owner=data.owner,
        amount=data.amount,
        pipeline=pipeline,
        stage=stage,
        lead=lead,
        account=data.account,
        contact=data.contact,
        source=data.source if data.source is not None else (lead.source if lead else None),
        lead_source_id=lead.source_id if lead else None,
        industry=data.industry if data.industry is not None else (lead.industry if lead else None),
        expected_close_date=data.expected_close_date,
        next_follow_up=data.next_follow_up,
        created_at=created_at,
        reached_order=stage.order,
        stage_entered_at=created_at,
    )
    _check_required_fields(deal, stage)
    deal.save()
    StageChange.objects.create(
        deal=deal, from_stage=None, to_stage=stage, at=created_at, by=by, reach_seconds=0
    )  # (the same moment: 0 however the database reads times)
    events.emit(events.deal_created, deal=deal)
    return deal


@transaction.atomic
def deal_update(*, deal: Deal, **fields) -> Deal:
    """Edit a deal's own fields. Stage, close and facts move only through the services below."""
    system = {
        "stage",
        "stage_id",
        "closed_at",
        "reached_order",
        "lost_at_stage",
        "stage_entered_at",
        "last_follow_up_at",
        "follow_up_count",
        "lost_reason",
        "competitor",
        "pipeline",
        "id",
        "pk",
    } & fields.keys()
    if system:
        raise ValidationError({f: _("Change this through a stage move or close.") for f in system})
    if "amount" in fields and (fields["amount"] is None or fields["amount"] < 0):
        raise ValidationError({"amount": _("The amount cannot be negative.")})
    for name, value in fields.items():
        setattr(deal, name, value)
    update_fields = [*fields.keys(), "updated_at"]
    if {"lead", "lead_id"} & fields.keys():
        deal.lead_source_id = deal.lead.source_id if deal.lead_id else None
        update_fields.append("lead_source")
    # A deal already past a stage must keep that stage's required fields filled.
    if deal.stage.kind != StageKind.LOST:
        _check_required_fields(deal, deal.stage)
    # Save only what the caller changed, so a stale object cannot undo facts (follow-up count,
    # last follow-up) that other services moved since it was loaded.
    deal.save(update_fields=update_fields)
    if "created_at" in fields:
        # Days to reach each stage count from creation; a deal without history entered its
        # stage at creation.
        deals_refresh_stage_facts([deal.pk])
        stage_entries_refresh_facts([deal.pk])
    return deal


def _latest_change_at(deal: Deal) -> dt.datetime | None:
    return deal.stage_changes.aggregate(m=Max("at"))["m"]


@transaction.atomic
def deal_move(
    *,
    deal: Deal,
    stage: Stage,
    by: User | None = None,
    at: dt.datetime | None = None,
    lost_reason: LostReason | None = None,
    competitor: Competitor | None = None,
    lost_notes: str = "",
) -> Deal:
    """Move a deal to `stage`: forwards, backwards, closing, or reopening a closed deal.

    Every move is recorded. Moving to won/lost sets `closed_at`; lost needs a reason (and a
    competitor when the reason requires one); reopening clears the close.
    """
    # of=self: lock the deal row only; locking the joined stage row too deadlocks two moves
    # through the same stages on PostgreSQL.
    deal = Deal.objects.select_for_update(of=("self",)).select_related("stage").get(pk=deal.pk)
    at = _now(at)
    if stage.pipeline_id != deal.pipeline_id:
        raise ValidationError({"stage": _("That stage belongs to another pipeline.")})
    if stage.pk == deal.stage_id:
        raise ValidationError({"stage": _("The deal is already in “%(s)s”.") % {"s": stage.label}})
    if at < deal.created_at:
        raise ValidationError({"at": _("A stage change cannot come before the deal was created.")})
    latest = _latest_change_at(deal)
    if latest is not None and at < latest:
        raise ValidationError({"at": _("A stage change cannot come before the deal's last one.")})

    if stage.kind == StageKind.LOST:
        if lost_reason is None:
            raise ValidationError(
                {"lost_reason": _("Closing a deal as lost requires a lost reason.")}
            )
        if lost_reason.requires_competitor and competitor is None:
            raise ValidationError({"competitor": _("Name the competitor the deal was lost to.")})
    _check_required_fields(deal, stage)

    from_stage = deal.stage
    history = StageChange.objects.filter(deal=deal)
    if latest is None:
        # A deal without history (imported without it) counts as having entered its current
        # stage at created_at (CONTRACT §4). Record that entry before the move, so the history
        # explains the facts the deal has and a recomputation (a stage reorder) keeps them.
        StageChange.objects.create(
            deal=deal,
            from_stage=None,
            to_stage=from_stage,
            at=deal.created_at,
            reached_before=0,
            reach_seconds=_reach_seconds(from_stage, 0, deal.created_at, deal.created_at),
        )
    reached_before = (
        history.exclude(to_stage__kind=StageKind.LOST).aggregate(m=Max("to_stage__order"))["m"] or 0
    )
    history.filter(left_at__isnull=True).update(left_at=at)
    change = StageChange.objects.create(
        deal=deal,
        from_stage=from_stage,
        to_stage=stage,
        at=at,
        by=by,
        reached_before=reached_before,
        reach_seconds=_reach_seconds(stage, reached_before, at, deal.created_at),
    )
    deal.stage = stage
    deal.stage_entered_at = at
    if stage.kind != StageKind.LOST:
        deal.reached_order = max(deal.reached_order, stage.order)
    if stage.kind == StageKind.OPEN:
        deal.closed_at = None
        deal.lost_reason = None
        deal.competitor = None
        deal.lost_at_stage = None
        deal.lost_notes = ""
    elif stage.kind == StageKind.WON:
        deal.closed_at = at
        deal.lost_reason = None
        deal.competitor = None
        deal.lost_at_stage = None
        deal.needs_attention = False
    else:
        deal.closed_at = at
        deal.lost_reason = lost_reason
        deal.competitor = competitor
        deal.lost_notes = lost_notes
        deal.lost_at_stage = from_stage
        deal.needs_attention = False
    deal.save()

    events.emit(
        events.deal_stage_changed, deal=deal, from_stage=from_stage, to_stage=stage, change=change
    )
    if stage.kind == StageKind.WON:
        events.emit(events.deal_won, deal=deal)
    elif stage.kind == StageKind.LOST:
        events.emit(events.deal_lost, deal=deal)
    return deal


@transaction.atomic
def deal_move_with_fields(
    *, deal: Deal, stage: Stage, values: dict, by: User | None = None
) -> Deal:
    """Fill fields a stage requires and move there, all or nothing: a refused move (a field
    still missing, a lost close without a reason, …) leaves the filled values unsaved too.

    Only the fields a stage may require are accepted, and each must be filled; the deal's
    current stage is not re-checked, because the move checks everything the new stage needs."""
    unknown = sorted(set(values) - REQUIRABLE_FIELDS.keys())
    if unknown:
        raise ValidationError(
            {f: _("This field cannot be filled in on a stage move.") for f in unknown}
        )
    deal = Deal.objects.select_for_update(of=("self",)).get(pk=deal.pk)
    for name, value in values.items():
        setattr(deal, name, value)
    unfilled = [f for f in values if not REQUIRABLE_FIELDS[f](deal)]
    if unfilled:
        raise ValidationError(
            {
                f: _("%(field)s is required to enter stage “%(stage)s”.")
                % {"field": Deal._meta.get_field(f).verbose_name, "stage": stage.label}
                for f in unfilled
            }
        )
    if values:
        deal.save(update_fields=[*values.keys(), "updated_at"])
    return deal_move(deal=deal, stage=stage, by=by)


@transaction.atomic
def deal_undo_move(*, deal: Deal, change: StageChange, by: User | None = None) -> Deal:
    """Take back a move: the deal goes back to the stage `change` left, recorded as a new move
    (the history keeps both). Only the deal's latest move can be taken back, so an undo never
    jumps over a move someone made since; a move back to lost needs its reason again, through
    deal_close_lost."""
    deal = Deal.objects.select_for_update(of=("self",)).get(pk=deal.pk)
    latest = deal.stage_changes.order_by("-at", "-id").first()
    if change.deal_id != deal.pk or latest is None or latest.pk != change.pk:
        raise ValidationError({"change": _("Only the deal's latest move can be undone.")})
    if change.from_stage_id is None:
        raise ValidationError({"change": _("A deal's first stage is not a move to undo.")})
    return deal_move(deal=deal, stage=change.from_stage, by=by)


def deals_flag_attention(*, deal_ids) -> int:
    """Flag open deals "needs attention" (workflow rules). A follow-up or a close clears it.
    A bare flag: unlike deal_update it does not re-check required fields a deal may lack."""
    return Deal.objects.filter(pk__in=list(deal_ids), stage__kind=StageKind.OPEN).update(
        needs_attention=True
    )


def _closing_stage(deal: Deal, kind: str) -> Stage:
    stage = Stage.objects.filter(pipeline_id=deal.pipeline_id, kind=kind).order_by("order").first()
    if stage is None:
        raise ValidationError({"stage": _("The pipeline has no %(k)s stage.") % {"k": kind}})
    return stage


def deal_close_won(*, deal: Deal, by: User | None = None, at: dt.datetime | None = None) -> Deal:
    return deal_move(deal=deal, stage=_closing_stage(deal, StageKind.WON), by=by, at=at)


def deal_close_lost(
    *,
    deal: Deal,
    lost_reason: LostReason | None,
    competitor: Competitor | None = None,
    notes: str = "",
    by: User | None = None,
    at: dt.datetime | None = None,
) -> Deal:
    return deal_move(
        deal=deal,
        stage=_closing_stage(deal, StageKind.LOST),
        by=by,
        at=at,
        lost_reason=lost_reason,
        competitor=competitor,
        lost_notes=notes,
    )


@transaction.atomic
def deal_delete(*, deal: Deal) -> None:
    lead_id = deal.lead_id
    deal.delete()  # its history and activities go with it
    if lead_id is not None:
        leads_refresh_facts([lead_id])
