"""Every write to the funnel's record goes through these functions.

They validate, then write inside one transaction, so that the invariants hold whatever the entry
point (web, API, CLI, import, rules):

- every stage change writes a StageChange (who, when, from, to), and the newest one is the
  deal's current stage;
- `won`/`lost` set `closed_at`; reopening clears it;
- closing lost needs a lost reason, and a competitor when the reason says so;
- a stage's required fields must be filled to enter it;
- the per-deal facts that analytics reads (`reached_order`, `lost_at_stage`, `stage_entered_at`,
  `last_follow_up_at`, `follow_up_count`) and the per-entry facts of the history
  (`StageChange.left_at`, `reached_before`) move in the same transaction as the change.

Errors are `django.core.exceptions.ValidationError` keyed by the field at fault, so forms, the
API (4xx) and the CLI (exit 2) can all name it.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import events
from leakmap.crm.models import (
    Account,
    Activity,
    ActivityKind,
    Competitor,
    Contact,
    Deal,
    Industry,
    Lead,
    LeadStatus,
    LostReason,
    Pipeline,
    Source,
    Stage,
    StageChange,
    StageKind,
    WholeSecondsBetween,
)

log = logging.getLogger(__name__)

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


def _now(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return timezone.now()
    if timezone.is_naive(at):
        raise ValidationError({"at": _("A time without a time zone is ambiguous.")})
    return at


def default_pipeline() -> Pipeline:
    pipeline = Pipeline.objects.filter(is_default=True).first() or Pipeline.objects.first()
    if pipeline is None:
        raise ValidationError({"pipeline": _("No pipeline is installed; run `leakmap migrate`.")})
    return pipeline


def first_open_stage(pipeline: Pipeline) -> Stage:
    stage = pipeline.stages.filter(kind=StageKind.OPEN).order_by("order").first()
    if stage is None:
        raise ValidationError({"stage": _("Pipeline %(p)s has no open stage.") % {"p": pipeline}})
    return stage


# --- Lookups ------------------------------------------------------------------------------------


def source_get_or_create(name: str) -> Source:
    return Source.objects.get_or_create(name=name.strip())[0]


def industry_get_or_create(name: str) -> Industry:
    return Industry.objects.get_or_create(name=name.strip())[0]


def competitor_get_or_create(name: str) -> Competitor:
    return Competitor.objects.get_or_create(name=name.strip())[0]


# --- Leads --------------------------------------------------------------------------------------


@transaction.atomic
def lead_create(
    *,
    name: str,
    owner: User | None = None,
    source: Source | None = None,
    company: str = "",
    email: str = "",
    phone: str = "",
    industry: Industry | None = None,
    title: str = "",
    budget: Decimal | None = None,
    product: str = "",
    region: str = "",
    created_at: dt.datetime | None = None,
    external_id: str | None = None,
    utm: dict[str, str] | None = None,
    referrer: str = "",
    use_assignment_rules: bool = False,
) -> Lead:
    """The lead intake of every channel that makes one lead (web, API, web forms): create it and
    decide its owner once. The owner given, else the assignment rules when the channel asks
    for them (a web form's "use assignment rules"), else none: an unassigned lead, which
    managers see. lead.created goes out with that owner; its subscribers only notify."""
    if not name or not name.strip():
        raise ValidationError({"name": _("A lead needs a name.")})
    if budget is not None and budget < 0:
        raise ValidationError({"budget": _("The budget cannot be negative.")})
    utm = utm or {}
    lead = Lead(
        external_id=external_id or None,
        name=name.strip(),
        company=company,
        email=email,
        phone=phone,
        source=source,
        industry=industry,
        title=title,
        budget=budget,
        product=product,
        region=region,
        owner=owner,
        status=LeadStatus.NEW,
        created_at=_now(created_at),
        utm_source=utm.get("utm_source", "")[:100],
        utm_medium=utm.get("utm_medium", "")[:100],
        utm_campaign=utm.get("utm_campaign", "")[:100],
        referrer=referrer[:500],
    )
    lead.full_clean(exclude=["owner", "source", "industry"])
    lead.save()
    if lead_intake_assign([lead.pk], use_assignment_rules=use_assignment_rules):
        lead.refresh_from_db(fields=["owner"])
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


@transaction.atomic
def lead_convert(
    *,
    lead: Lead,
    by: User | None = None,
    deal_name: str = "",
    amount: Decimal | None = None,
    account: Account | None = None,
    account_name: str = "",
    contact_name: str = "",
    expected_close_date: dt.date | None = None,
    stage: Stage | None = None,
    owner: User | None = None,
    at: dt.datetime | None = None,
    external_id: str | None = None,
) -> Deal:
    """Lead → account + contact + deal, in one step. Source, industry and owner carry over."""
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
        by=by,
        external_id=external_id,
    )
    lead.status = LeadStatus.CONVERTED
    lead.converted_at = at
    if lead.owner_id is None:
        lead.owner = owner
    lead.save(update_fields=["status", "converted_at", "owner"])
    events.emit(events.lead_converted, lead=lead, deal=deal)
    return deal


# --- Deals --------------------------------------------------------------------------------------


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


@transaction.atomic
def deal_create(
    *,
    name: str,
    owner: User,
    amount: Decimal = Decimal("0"),
    stage: Stage | None = None,
    pipeline: Pipeline | None = None,
    lead: Lead | None = None,
    account: Account | None = None,
    contact: Contact | None = None,
    source: Source | None = None,
    industry: Industry | None = None,
    expected_close_date: dt.date | None = None,
    next_follow_up: dt.datetime | None = None,
    created_at: dt.datetime | None = None,
    by: User | None = None,
    external_id: str | None = None,
) -> Deal:
    """A new deal in an open stage (the pipeline's first unless given), with its first history
    row. Closing goes through deal_close_won / deal_close_lost afterwards."""
    if not name or not name.strip():
        raise ValidationError({"name": _("A deal needs a name.")})
    if amount is None or amount < 0:
        raise ValidationError({"amount": _("The amount cannot be negative.")})
    if owner is None:
        raise ValidationError({"owner": _("The deal needs an owner.")})
    pipeline = stage.pipeline if stage is not None else (pipeline or default_pipeline())
    stage = stage or first_open_stage(pipeline)
    if stage.kind != StageKind.OPEN:
        raise ValidationError(
            {"stage": _("A new deal starts in an open stage; close it afterwards.")}
        )
    created_at = _now(created_at)
    deal = Deal(
        external_id=external_id or None,
        name=name.strip(),
        owner=owner,
        amount=amount,
        pipeline=pipeline,
        stage=stage,
        lead=lead,
        account=account,
        contact=contact,
        source=source if source is not None else (lead.source if lead else None),
        lead_source_id=lead.source_id if lead else None,
        industry=industry if industry is not None else (lead.industry if lead else None),
        expected_close_date=expected_close_date,
        next_follow_up=next_follow_up,
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


def _reach_seconds(
    stage: Stage, reached_before: int, at: dt.datetime, created_at: dt.datetime
) -> WholeSecondsBetween | None:
    """StageChange.reach_seconds of an entry: set when it takes the deal to an order it had not
    reached (as stage_entries_refresh_facts computes it)."""
    if stage.kind == StageKind.LOST or stage.order <= reached_before:
        return None
    # Computed by the database, as every other writer of the fact does: SQLite reads times to
    # the millisecond, so Python's exact microseconds could round a second the other way.
    return WholeSecondsBetween(Value(at, DateTimeField()), Value(created_at, DateTimeField()))


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


# --- Activities ---------------------------------------------------------------------------------


@transaction.atomic
def activity_log(
    *,
    owner: User,
    kind: str,
    deal: Deal | None = None,
    lead: Lead | None = None,
    subject: str = "",
    due_at: dt.datetime | None = None,
    done_at: dt.datetime | None = None,
    notes: str = "",
    created_at: dt.datetime | None = None,
    external_id: str | None = None,
    next_follow_up: dt.datetime | None = None,
) -> Activity:
    """Record a call, e-mail, meeting, note or task. With `done_at` it is a follow-up: it moves
    the deal's and lead's follow-up facts. `next_follow_up` schedules the deal's next one."""
    if kind not in ActivityKind.values:
        raise ValidationError({"kind": _("Unknown activity kind “%(k)s”.") % {"k": kind}})
    if deal is None and lead is None:
        raise ValidationError({"deal": _("An activity belongs to a deal or a lead.")})
    if deal is not None and lead is None:
        lead = deal.lead
    created_at = _now(created_at)
    activity = Activity.objects.create(
        external_id=external_id or None,
        kind=kind,
        subject=subject[:200],
        owner=owner,
        deal=deal,
        lead=lead,
        due_at=due_at,
        done_at=done_at,
        notes=notes,
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


# --- Facts, recomputed from the record in bulk -------------------------------------------------


def deals_refresh_facts(deal_ids=None) -> int:
    """Recompute every per-deal fact from the stage history and activities, in SQL.

    Used after bulk imports and after a pipeline's stages are reordered; the per-change services
    above keep the same facts incrementally. `deal_ids` may be a list or a queryset of ids;
    None means every deal. Returns the number of deals updated. The two halves are separate
    functions because a bulk write usually moves only one of them: a history import leaves
    follow-ups alone, an activities import leaves the stages alone.
    """
    with transaction.atomic():
        count = deals_refresh_stage_facts(deal_ids)
        deals_refresh_follow_up_facts(deal_ids)
    return count


def _deals(deal_ids):
    return Deal.objects.all() if deal_ids is None else Deal.objects.filter(pk__in=deal_ids)


def deals_refresh_stage_facts(deal_ids=None) -> int:
    """The facts that come from the stage history: reached_order, stage_entered_at and
    lost_at_stage. Returns the number of deals updated.

    A deal with no history row counts as having entered its current stage at created_at, and
    every open stage before it (CONTRACT §4). A lost deal with no history has no stage it was
    lost from on record: it counts as lost at the pipeline's first open stage, so it is not
    credited with stages it never showed it reached.
    """
    deals = _deals(deal_ids)
    history = StageChange.objects.filter(deal=OuterRef("pk"))
    newest = history.order_by("-at", "-id")
    reached = (
        history.exclude(to_stage__kind=StageKind.LOST)
        .values("deal")
        .annotate(m=Max("to_stage__order"))
        .values("m")
    )
    current_stage = Stage.objects.filter(pk=OuterRef("stage_id"))
    first_open = Stage.objects.filter(
        pipeline=OuterRef("pipeline_id"), kind=StageKind.OPEN
    ).order_by("order")
    # Without history: the current stage's order, or for a lost deal the first open stage's.
    fallback_order = Coalesce(
        Subquery(current_stage.exclude(kind=StageKind.LOST).values("order")[:1]),
        Subquery(first_open.values("order")[:1]),
        Value(0),
    )
    with transaction.atomic():
        count = deals.update(
            reached_order=Coalesce(Subquery(reached[:1]), fallback_order),
            stage_entered_at=Coalesce(Subquery(newest.values("at")[:1]), F("created_at")),
        )
        # The stage it was in when it entered lost: the newest change's from_stage.
        deals.filter(stage__kind=StageKind.LOST).update(
            lost_at_stage=Coalesce(
                Subquery(newest.filter(to_stage__kind=StageKind.LOST).values("from_stage")[:1]),
                Subquery(first_open.values("pk")[:1]),
            )
        )
        deals.exclude(stage__kind=StageKind.LOST).exclude(lost_at_stage=None).update(
            lost_at_stage=None
        )
    return count


def deals_refresh_follow_up_facts(deal_ids=None) -> None:
    """follow_up_count and last_follow_up_at: the deal's done activities."""
    follow_ups = (
        Activity.objects.filter(deal=OuterRef("pk"), done_at__isnull=False)
        .values("deal")
        .annotate(n=Count("id"), last=Max("done_at"))
    )
    _deals(deal_ids).update(
        last_follow_up_at=Subquery(follow_ups.values("last")[:1]),
        follow_up_count=Coalesce(Subquery(follow_ups.values("n")[:1]), Value(0)),
    )


def stage_entries_refresh_facts(deal_ids=None) -> None:
    """Recompute the per-entry facts of the deals' history (StageChange.left_at and
    reached_before), in one SQL statement over a window by deal in (at, id) order.

    deal_move keeps them incrementally; this is for writes that replace or append history in
    bulk, and for a reorder of stages. `deal_ids` may be a list or a queryset of ids; None means
    every deal.
    """
    qn = connection.ops.quote_name
    where, params = "", []
    if deal_ids is not None:
        if isinstance(deal_ids, QuerySet):
            sub, params = deal_ids.query.sql_with_params()
            where = f"WHERE h.deal_id IN ({sub})"
        else:
            ids = list(deal_ids)
            if not ids:
                return
            where = f"WHERE h.deal_id IN ({', '.join(['%s'] * len(ids))})"
            params = ids
    sc, st = qn(StageChange._meta.db_table), qn(Stage._meta.db_table)
    dl = qn(Deal._meta.db_table)
    window = f"PARTITION BY h.deal_id ORDER BY h.{qn('at')}, h.id"
    since_created = WholeSecondsBetween.sql_text(connection.vendor, f"h.{qn('at')}", "d.created_at")
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {sc} SET left_at = w.nxt, reached_before = w.rb,
                reach_seconds = CASE WHEN w.kind <> %s AND w.ord > w.rb THEN w.since END
            FROM (
                SELECT h.id AS id, LEAD(h.{qn("at")}) OVER ({window}) AS nxt,
                       COALESCE(MAX(CASE WHEN t.kind <> %s THEN t.{qn("order")} END) OVER (
                           {window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS rb,
                       t.kind AS kind, t.{qn("order")} AS ord, {since_created} AS since
                FROM {sc} h JOIN {st} t ON t.id = h.to_stage_id JOIN {dl} d ON d.id = h.deal_id
                {where}
            ) w
            WHERE {sc}.id = w.id
            """,
            [StageKind.LOST, StageKind.LOST, *params],
        )


def deals_refresh_lead_source(lead_ids=None) -> int:
    """Deal.lead_source from the deals' leads: for the deals of `lead_ids` (any iterable of
    lead ids), or every deal with a lead when None. Returns the deals written."""
    deals = Deal.objects.filter(lead__isnull=False)
    if lead_ids is not None:
        deals = deals.filter(lead_id__in=list(lead_ids))
    return deals.update(
        lead_source_id=Subquery(Lead.objects.filter(pk=OuterRef("lead_id")).values("source_id")[:1])
    )


def leads_refresh_facts(lead_ids=None) -> None:
    """Recompute `first_contacted_at` of leads: the first follow-up on the lead or on one of
    its deals. `lead_ids` may be any iterable of ids; None means every lead.

    `lead = X OR deal.lead = X` is what it means, but no index serves that OR; so it is split:
    activities on the lead itself (indexed), then the rare activities whose deal belongs to
    another lead than the activity names. Imports of a million leads depend on this.
    """
    ids = None if lead_ids is None else list(lead_ids)
    leads = Lead.objects.all() if ids is None else Lead.objects.filter(pk__in=ids)
    on_lead = (
        Activity.objects.filter(lead=OuterRef("pk"), done_at__isnull=False)
        .order_by("done_at")
        .values("done_at")
    )
    # Two statements so that a lead without follow-ups is written only if it had a date: after
    # an import over every lead most have none, and rewriting them all costs seconds.
    done_on_lead = Exists(Activity.objects.filter(lead=OuterRef("pk"), done_at__isnull=False))
    leads.filter(~done_on_lead).exclude(first_contacted_at=None).update(first_contacted_at=None)
    leads.filter(done_on_lead).update(first_contacted_at=Subquery(on_lead[:1]))
    via_deal = Activity.objects.filter(done_at__isnull=False, deal__lead__isnull=False).exclude(
        lead_id=F("deal__lead_id")
    )
    if ids is not None:
        via_deal = via_deal.filter(deal__lead_id__in=ids)
    for lead_id, first in (
        via_deal.order_by()
        .values("deal__lead_id")
        .annotate(m=Min("done_at"))
        .values_list("deal__lead_id", "m")
    ):
        Lead.objects.filter(pk=lead_id).filter(
            Q(first_contacted_at__isnull=True) | Q(first_contacted_at__gt=first)
        ).update(first_contacted_at=first)


# --- Accounts, contacts, activity edits and deletes ---------------------------------------------
# Added for the REST API (issue 7): the API writes only through services, and these entities had
# none yet.


def _full_clean(obj, *, exclude: list[str]) -> None:
    obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)


@transaction.atomic
def account_create(
    *,
    name: str,
    owner: User | None = None,
    industry: Industry | None = None,
    created_at: dt.datetime | None = None,
) -> Account:
    if not name or not name.strip():
        raise ValidationError({"name": _("An account needs a name.")})
    account = Account(
        name=name.strip(), owner=owner, industry=industry, created_at=_now(created_at)
    )
    _full_clean(account, exclude=["owner", "industry"])
    account.save()
    return account


@transaction.atomic
def account_update(*, account: Account, **fields) -> Account:
    allowed = {"name", "owner", "industry"}
    bad = fields.keys() - allowed
    if bad:
        raise ValidationError({f: _("This field cannot be changed.") for f in bad})
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError({"name": _("An account needs a name.")})
    for name, value in fields.items():
        setattr(account, name, value.strip() if name == "name" else value)
    _full_clean(account, exclude=["owner", "industry"])
    account.save()
    return account


@transaction.atomic
def contact_create(
    *,
    name: str,
    account: Account | None = None,
    email: str = "",
    phone: str = "",
    title: str = "",
    owner: User | None = None,
    created_at: dt.datetime | None = None,
) -> Contact:
    if not name or not name.strip():
        raise ValidationError({"name": _("A contact needs a name.")})
    contact = Contact(
        name=name.strip(),
        account=account,
        email=email,
        phone=phone,
        title=title,
        owner=owner,
        created_at=_now(created_at),
    )
    _full_clean(contact, exclude=["owner", "account"])
    contact.save()
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, **fields) -> Contact:
    allowed = {"name", "account", "email", "phone", "title", "owner"}
    bad = fields.keys() - allowed
    if bad:
        raise ValidationError({f: _("This field cannot be changed.") for f in bad})
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError({"name": _("A contact needs a name.")})
    for name, value in fields.items():
        setattr(contact, name, value.strip() if name == "name" else value)
    _full_clean(contact, exclude=["owner", "account"])
    contact.save()
    return contact


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


@transaction.atomic
def deal_delete(*, deal: Deal) -> None:
    lead_id = deal.lead_id
    deal.delete()  # its history and activities go with it
    if lead_id is not None:
        leads_refresh_facts([lead_id])


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


@transaction.atomic
def account_delete(*, account: Account) -> None:
    account.delete()  # deals and contacts keep existing without an account


@transaction.atomic
def contact_delete(*, contact: Contact) -> None:
    contact.delete()


# --- Settings: pipeline, stages, lookups, spend ---------------------------------------------------


@transaction.atomic
def stage_update(
    *,
    stage: Stage,
    label_zh: str,
    label_en: str,
    probability: int,
    sla_days: int | None,
    entry_criteria_zh: str = "",
    entry_criteria_en: str = "",
    required_fields: list[str] | None = None,
) -> Stage:
    """Edit a stage's labels, probability, SLA, entry criteria and required fields. Its key and
    kind never change here: history rows and reports refer to them."""
    required_fields = list(required_fields or [])
    unknown = [f for f in required_fields if f not in REQUIRABLE_FIELDS]
    if unknown:
        raise ValidationError(
            {"required_fields": _("Unknown field(s): %(f)s.") % {"f": ", ".join(unknown)}}
        )
    if stage.kind == StageKind.WON and probability != 100:
        raise ValidationError({"probability": _("A won stage has a probability of 100 %.")})
    if stage.kind == StageKind.LOST and probability != 0:
        raise ValidationError({"probability": _("A lost stage has a probability of 0 %.")})
    stage.label_zh = label_zh.strip()
    stage.label_en = label_en.strip()
    stage.probability = probability
    stage.sla_days = sla_days if stage.kind == StageKind.OPEN else None
    stage.entry_criteria_zh = entry_criteria_zh.strip()
    stage.entry_criteria_en = entry_criteria_en.strip()
    stage.required_fields = required_fields
    stage.full_clean(exclude=["pipeline"])
    stage.save()
    return stage


@transaction.atomic
def stage_reorder(*, stage: Stage, direction: str) -> Stage:
    """Swap an open stage with its open neighbour ("up" = earlier, "down" = later).

    Won and lost keep their places after every open stage. `reached_order` is a stage order, so
    the per-deal facts of the pipeline are recomputed in the same transaction.
    """
    if direction not in ("up", "down"):
        raise ValidationError({"direction": _("Move a stage up or down.")})
    if stage.kind != StageKind.OPEN:
        raise ValidationError({"order": _("Won and lost stay after the open stages.")})
    siblings = Stage.objects.select_for_update().filter(
        pipeline_id=stage.pipeline_id, kind=StageKind.OPEN
    )
    neighbour = (
        siblings.filter(order__lt=stage.order).order_by("-order").first()
        if direction == "up"
        else siblings.filter(order__gt=stage.order).order_by("order").first()
    )
    if neighbour is None:
        raise ValidationError({"order": _("“%(s)s” is already at that end.") % {"s": stage.label}})
    stage.order, neighbour.order = neighbour.order, stage.order
    Stage.objects.bulk_update([stage, neighbour], ["order"])
    # Only what the swap can move is recomputed (a million-lead company waited 12 s per click
    # for every deal's facts). A deal's reached order is the highest order among the stages it
    # entered (or its fallback stage's); swapping two adjacent orders a and b changes it only
    # where it was a or b, and it stays a or b. An entry's reached_before can change only in a
    # deal that entered one of the two stages. The follow-up facts do not depend on orders.
    swapped = [stage.order, neighbour.order]
    deals_refresh_stage_facts(
        Deal.objects.filter(pipeline_id=stage.pipeline_id, reached_order__in=swapped).values("pk")
    )
    stage_entries_refresh_facts(
        StageChange.objects.filter(to_stage_id__in=[stage.pk, neighbour.pk]).values("deal_id")
    )
    return stage


LOOKUP_MODELS = {
    "source": Source,
    "industry": Industry,
    "competitor": Competitor,
    "lost_reason": LostReason,
}


@transaction.atomic
def lookup_save(
    *,
    kind: str,
    name: str,
    is_active: bool = True,
    instance=None,
    requires_competitor: bool | None = None,
):
    """Create or rename/enable/disable a source, industry, competitor or lost reason. Disabled
    entries stay on old records but are no longer offered."""
    model = LOOKUP_MODELS.get(kind)
    if model is None:
        raise ValidationError({"kind": _("Unknown list “%(k)s”.") % {"k": kind}})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("A name is required.")})
    clash = model.objects.filter(name=name)
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    if clash.exists():
        raise ValidationError({"name": _("“%(n)s” already exists.") % {"n": name}})
    obj = instance or model()
    obj.name = name
    obj.is_active = is_active
    if requires_competitor is not None and model is LostReason:
        obj.requires_competitor = requires_competitor
    obj.save()
    return obj


@transaction.atomic
def spend_set(*, source: Source, month: dt.date, amount: Decimal):
    """The channel's spend for one month (replaces what was there). Returns the Spend row."""
    from leakmap.crm.models import Spend

    if amount is None or amount < 0:
        raise ValidationError({"amount": _("Spend cannot be negative.")})
    spend, _created = Spend.objects.update_or_create(
        source=source, month=month.replace(day=1), defaults={"amount": amount}
    )
    return spend
