"""Settings: the pipeline's stages, the lookup lists (sources, industries, competitors, lost
reasons) and the spend per channel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.crm.models import (
    Competitor,
    Deal,
    Industry,
    LostReason,
    Source,
    Stage,
    StageChange,
    StageKind,
)
from leakmap.crm.services.deals import REQUIRABLE_FIELDS
from leakmap.crm.services.facts import deals_refresh_stage_facts, stage_entries_refresh_facts


def source_get_or_create(name: str) -> Source:
    return Source.objects.get_or_create(name=name.strip())[0]


def industry_get_or_create(name: str) -> Industry:
    return Industry.objects.get_or_create(name=name.strip())[0]


def competitor_get_or_create(name: str) -> Competitor:
    return Competitor.objects.get_or_create(name=name.strip())[0]


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
