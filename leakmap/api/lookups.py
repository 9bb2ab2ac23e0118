"""Turning the names and ids in a request into records the caller may use.

Every reference is resolved through the visibility selectors: an id the caller cannot see is
reported exactly like one that does not exist, so the API never confirms another rep's records.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Competitor, LostReason, Stage, StageKind


def owner_for(user: User, username: str | None, *, field: str = "owner") -> User:
    """The owner named in the request (the caller when empty); only someone the caller may
    hand records to (policy.assignable_users), so a rep cannot hand work to a stranger."""
    if not username:
        return user
    owner = policy.assignable_users(user).filter(username=username, is_active=True).first()
    if owner is None:
        raise ValidationError({field: _("No user “%(u)s” you can assign to.") % {"u": username}})
    return owner


def source(name: str | None):
    return services.source_get_or_create(name) if name and name.strip() else None


def industry(name: str | None):
    return services.industry_get_or_create(name) if name and name.strip() else None


def competitor(name: str | None) -> Competitor | None:
    return services.competitor_get_or_create(name) if name and name.strip() else None


def lost_reason(name: str | None, *, field: str = "lost_reason") -> LostReason | None:
    if not name:
        return None
    reason = LostReason.objects.filter(name=name.strip(), is_active=True).first()
    if reason is None:
        choices = ", ".join(
            LostReason.objects.filter(is_active=True).values_list("name", flat=True)
        )
        raise ValidationError(
            {field: _("Unknown lost reason “%(r)s”; use one of: %(c)s") % {"r": name, "c": choices}}
        )
    return reason


def stage(key: str, *, pipeline_id: int | None = None, open_only: bool = False) -> Stage:
    qs = Stage.objects.select_related("pipeline")
    qs = qs.filter(pipeline_id=pipeline_id) if pipeline_id else qs.filter(pipeline__is_default=True)
    if open_only:
        qs = qs.filter(kind=StageKind.OPEN)
    found = qs.filter(key=key).first()
    if found is None:
        keys = ", ".join(qs.order_by("order").values_list("key", flat=True))
        raise ValidationError(
            {"stage": _("Unknown stage “%(s)s”; use one of: %(k)s") % {"s": key, "k": keys}}
        )
    return found


def _visible(qs, pk: int | None, field: str, what: str):
    if pk is None:
        return None
    obj = qs.filter(pk=pk).first()
    if obj is None:
        raise ValidationError({field: _("No %(what)s with id %(id)s.") % {"what": what, "id": pk}})
    return obj


def lead_ref(user: User, pk: int | None, field: str = "lead_id"):
    return _visible(selectors.visible_leads(user), pk, field, _("lead"))


def deal_ref(user: User, pk: int | None, field: str = "deal_id"):
    return _visible(selectors.visible_deals(user), pk, field, _("deal"))


def account_ref(user: User, pk: int | None, field: str = "account_id"):
    return _visible(selectors.visible_accounts(user), pk, field, _("account"))


def contact_ref(user: User, pk: int | None, field: str = "contact_id"):
    return _visible(selectors.visible_contacts(user), pk, field, _("contact"))


def unused_external_id(model, value: str | None) -> str | None:
    """External ids are unique per kind; say so instead of failing on the constraint."""
    if value and model.objects.filter(external_id=value).exists():
        raise ValidationError(
            {"external_id": _("External id “%(v)s” is already in use.") % {"v": value}}
        )
    return value


def get_visible(qs, pk: int):
    """The record at a URL: 404 when it does not exist or the caller may not see it."""
    return get_object_or_404(qs, pk=pk)


def visible_or(qs, record):
    """`record` as re-read through the caller's visible set (every related name as stored),
    or as it is when the caller just handed it to someone whose records they do not see."""
    return qs.filter(pk=record.pk).first() or record
