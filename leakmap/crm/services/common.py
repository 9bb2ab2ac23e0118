"""What several services share: times, the default pipeline, model validation."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.crm.models import Pipeline, Stage, StageKind


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


def _full_clean(obj, *, exclude: list[str]) -> None:
    obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
