"""Settings: the pipeline's stages, the lookup lists (sources, industries, competitors, lost
reasons) and the spend per channel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from leakmap.crm.models import (
    Competitor,
    Deal,
    DealTally,
    Industry,
    LostReason,
    LostTally,
    Pipeline,
    ReachTally,
    Source,
    Stage,
    StageChange,
    StageKind,
    StayTally,
)
from leakmap.crm.services.deals import REQUIRABLE_FIELDS
from leakmap.crm.services.facts import deals_refresh_stage_facts, stage_entries_refresh_facts


def source_get_or_create(name: str) -> Source:
    return Source.objects.get_or_create(name=name.strip())[0]


def industry_get_or_create(name: str) -> Industry:
    return Industry.objects.get_or_create(name=name.strip())[0]


def competitor_get_or_create(name: str) -> Competitor:
    return Competitor.objects.get_or_create(name=name.strip())[0]


def _clean_stage_fields(
    *,
    pipeline_id: int,
    kind: str,
    label_zh: str,
    label_en: str,
    probability: int | None,
    sla_days: int | None,
    required_fields: list[str],
    exclude_pk: int | None = None,
) -> dict[str, str]:
    """The errors of a stage's editable fields, by field. Imports match a stage by its key or
    by a label in either language, so no label may name another stage of the pipeline."""
    errors: dict[str, str] = {}
    if not label_zh:
        errors["label_zh"] = _("A Chinese label is required.")
    if not label_en:
        errors["label_en"] = _("An English label is required.")
    others = Stage.objects.filter(pipeline_id=pipeline_id)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    taken = {}
    for other in others.only("key", "label_zh", "label_en", "order"):
        for name in (other.key, other.label_zh, other.label_en):
            taken.setdefault(name.casefold(), other)
    for field, label in (("label_zh", label_zh), ("label_en", label_en)):
        clash = taken.get(label.casefold()) if label else None
        if clash is not None and field not in errors:
            errors[field] = _("Another stage is already called “%(l)s” (stage %(n)s).") % {
                "l": label,
                "n": clash.label,
            }
    if probability is None or not 0 <= probability <= 100:
        errors["probability"] = _("The win probability is a percentage from 0 to 100.")
    elif kind == StageKind.WON and probability != 100:
        errors["probability"] = _("A won stage has a probability of 100 %.")
    elif kind == StageKind.LOST and probability != 0:
        errors["probability"] = _("A lost stage has a probability of 0 %.")
    if sla_days is not None and sla_days < 0:
        errors["sla_days"] = _("SLA days cannot be negative; leave it empty for no SLA.")
    unknown = [f for f in required_fields if f not in REQUIRABLE_FIELDS]
    if unknown:
        errors["required_fields"] = _("Unknown field(s): %(f)s.") % {"f": ", ".join(unknown)}
    return errors


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
    required_fields = list(dict.fromkeys(required_fields or []))
    label_zh, label_en = (label_zh or "").strip(), (label_en or "").strip()
    errors = _clean_stage_fields(
        pipeline_id=stage.pipeline_id,
        kind=stage.kind,
        label_zh=label_zh,
        label_en=label_en,
        probability=probability,
        sla_days=sla_days,
        required_fields=required_fields,
        exclude_pk=stage.pk,
    )
    if errors:
        raise ValidationError(errors)
    stage.label_zh = label_zh
    stage.label_en = label_en
    stage.probability = probability
    stage.sla_days = sla_days if stage.kind == StageKind.OPEN else None
    stage.entry_criteria_zh = entry_criteria_zh.strip()
    stage.entry_criteria_en = entry_criteria_en.strip()
    stage.required_fields = required_fields
    stage.full_clean(exclude=["pipeline"])
    stage.save()
    return stage


def _new_stage_key(pipeline_id: int, label_en: str) -> str:
    """A key for a new stage: from its English label where that gives one, unique in the
    pipeline. Keys stay internal (history, imports, the API); nobody types them."""
    base = slugify(label_en).replace("-", "_")[:40] or "stage"
    taken = set(Stage.objects.filter(pipeline_id=pipeline_id).values_list("key", flat=True))
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


@transaction.atomic
def stage_create(
    *,
    pipeline: Pipeline,
    label_zh: str,
    label_en: str,
    probability: int,
    sla_days: int | None,
    entry_criteria_zh: str = "",
    entry_criteria_en: str = "",
    required_fields: list[str] | None = None,
) -> Stage:
    """Add an open stage after the pipeline's last open stage, with a generated key.

    Won and lost keep their places after every open stage, so they move one order up. A won
    deal's reached order is won's order (and an entry's reached_before can be it), so the facts
    of the deals that reached it are recomputed in the same transaction, as a reorder does."""
    required_fields = list(dict.fromkeys(required_fields or []))
    label_zh, label_en = (label_zh or "").strip(), (label_en or "").strip()
    stages = list(Stage.objects.select_for_update().filter(pipeline_id=pipeline.pk))
    errors = _clean_stage_fields(
        pipeline_id=pipeline.pk,
        kind=StageKind.OPEN,
        label_zh=label_zh,
        label_en=label_en,
        probability=probability,
        sla_days=sla_days,
        required_fields=required_fields,
    )
    if errors:
        raise ValidationError(errors)
    new_order = max((s.order for s in stages if s.kind == StageKind.OPEN), default=0) + 1
    closed = [s for s in stages if s.kind != StageKind.OPEN]
    lowest_closed = min((s.order for s in closed), default=new_order + 1)
    if lowest_closed <= new_order:
        shift = new_order - lowest_closed + 1
        for s in closed:
            s.order += shift
        Stage.objects.bulk_update(closed, ["order"])
        reached_closed = Deal.objects.filter(
            pipeline_id=pipeline.pk, reached_order__gte=new_order
        ).values("pk")
        deals_refresh_stage_facts(reached_closed)
        stage_entries_refresh_facts(reached_closed)
    stage = Stage(
        pipeline=pipeline,
        key=_new_stage_key(pipeline.pk, label_en),
        label_zh=label_zh,
        label_en=label_en,
        order=new_order,
        probability=probability,
        kind=StageKind.OPEN,
        sla_days=sla_days,
        entry_criteria_zh=(entry_criteria_zh or "").strip(),
        entry_criteria_en=(entry_criteria_en or "").strip(),
        required_fields=required_fields,
    )
    stage.full_clean(exclude=["pipeline"])
    stage.save()
    return stage


def stage_use_count(stage: Stage) -> int:
    """Deals that name the stage: in it now, lost from it, or with it in their history."""
    in_history = StageChange.objects.filter(Q(to_stage=stage) | Q(from_stage=stage)).values(
        "deal_id"
    )
    return (
        Deal.objects.filter(Q(stage=stage) | Q(lost_at_stage=stage) | Q(pk__in=in_history))
        .order_by()
        .count()
    )


@transaction.atomic
def stage_delete(*, stage: Stage) -> None:
    """Remove an open stage no deal has ever been in. The stage has no switch to hide it, and a
    stage with deals carries their history and reports, so those are refused with the count:
    move the deals first."""
    if stage.kind != StageKind.OPEN:
        raise ValidationError({"stage": _("The won and lost stages cannot be removed.")})
    stage = Stage.objects.select_for_update().get(pk=stage.pk)
    if (
        not Stage.objects.filter(pipeline_id=stage.pipeline_id, kind=StageKind.OPEN)
        .exclude(pk=stage.pk)
        .exists()
    ):
        raise ValidationError({"stage": _("A pipeline needs at least one open stage.")})
    used = stage_use_count(stage)
    if used:
        raise ValidationError(
            {
                "stage": ngettext(
                    "“%(s)s” cannot be removed: %(n)d deal is in it or has it in its history.",
                    "“%(s)s” cannot be removed: %(n)d deals are in it or have it in their history.",
                    used,
                )
                % {"s": stage.label, "n": used}
            }
        )
    # Emptied groups stay in the tallies with n = 0; none may name a stage that is gone.
    for tally in (DealTally, LostTally):
        tally.objects.filter(stage_id=stage.pk).delete()
    for tally in (StayTally, ReachTally):
        tally.objects.filter(to_stage_id=stage.pk).delete()
    stage.delete()


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
    if model is LostReason and not is_active:
        others = LostReason.objects.filter(is_active=True)
        if instance is not None:
            others = others.exclude(pk=instance.pk)
        if not others.exists():
            raise ValidationError(
                {
                    "is_active": _(
                        "At least one lost reason must stay active: a deal cannot be closed as "
                        "lost without one."
                    )
                }
            )
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
