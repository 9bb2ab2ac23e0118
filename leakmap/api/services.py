"""Writes of the doors' configuration: web-to-lead forms and webhooks, as the settings pages
change them. Each validates the whole row (the model's clean, where the webhook target is
checked by netguard) before anything is saved."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from leakmap.api.models import FORM_FIELDS, WEBHOOK_EVENTS, WebForm, Webhook

MAX_FILL_SECONDS = 600


def _free_slug(base: str, instance: WebForm | None) -> str:
    base = (slugify(base) or "form")[:44]
    taken = WebForm.objects.all()
    if instance is not None:
        taken = taken.exclude(pk=instance.pk)
    taken = set(taken.filter(slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def webform_save(
    *,
    name: str,
    slug: str = "",
    fields: list[str] | None = None,
    source=None,
    owner=None,
    use_assignment_rules: bool = False,
    thank_you_text: str = "",
    redirect_url: str = "",
    allowed_origins: str = "",
    min_fill_seconds: int = 3,
    is_active: bool = True,
    instance: WebForm | None = None,
) -> WebForm:
    """Create or change a public web-to-lead form. A new lead must reach someone, so a form
    names an owner or hands its leads to the assignment rules (not both)."""
    name = (name or "").strip()
    slug = (slug or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = _("A name is required.")
    if slug:
        if slugify(slug) != slug:
            errors["slug"] = _("Use only lower-case letters, digits and hyphens, e.g. “expo-2026”.")
        else:
            clash = WebForm.objects.filter(slug=slug)
            if instance is not None:
                clash = clash.exclude(pk=instance.pk)
            if clash.exists():
                errors["slug"] = _("Another form already has the address “%(s)s”.") % {"s": slug}
    else:
        slug = _free_slug(name, instance)
    if owner is None and not use_assignment_rules:
        errors["owner"] = _(
            "Choose an owner or let the assignment rules pick one; otherwise the form's leads "
            "reach nobody."
        )
    elif owner is not None and not owner.is_active:
        errors["owner"] = _("%(u)s is disabled and cannot own new leads.") % {"u": owner}
    if min_fill_seconds is None or not 0 <= min_fill_seconds <= MAX_FILL_SECONDS:
        errors["min_fill_seconds"] = _("Enter a whole number from %(low)d to %(high)d.") % {
            "low": 0,
            "high": MAX_FILL_SECONDS,
        }
    if errors:
        raise ValidationError(errors)
    form = instance or WebForm()
    form.name = name
    form.slug = slug
    form.fields = [f for f in FORM_FIELDS if f in set(fields or [])] + [
        f for f in fields or [] if f not in FORM_FIELDS
    ]
    form.source = source
    form.owner = owner
    form.use_assignment_rules = use_assignment_rules
    form.thank_you_text = (thank_you_text or "").strip()
    form.redirect_url = (redirect_url or "").strip()
    form.allowed_origins = "\n".join(
        line.strip() for line in (allowed_origins or "").splitlines() if line.strip()
    )
    form.min_fill_seconds = min_fill_seconds
    form.is_active = is_active
    form.full_clean()
    form.save()
    return form


@transaction.atomic
def webform_set_active(*, form: WebForm, is_active: bool) -> WebForm:
    form.is_active = is_active
    form.save(update_fields=["is_active"])
    return form


@transaction.atomic
def webhook_save(
    *,
    url: str,
    events: list[str],
    description: str = "",
    is_active: bool = True,
    new_secret: bool = False,
    instance: Webhook | None = None,
) -> Webhook:
    """Create or change a webhook. The target is refused, as everywhere, when it is not a public
    http(s) address (leakmap.api.models.webhook_url_error); delivery checks it again each time."""
    errors: dict[str, str] = {}
    url = (url or "").strip()
    if not url:
        errors["url"] = _("Enter the address that receives the events.")
    events = list(dict.fromkeys(events or []))
    if not events:
        errors["events"] = _("Choose at least one event to send.")
    if errors:
        raise ValidationError(errors)
    hook = instance or Webhook()
    hook.url = url
    hook.events = [e for e in WEBHOOK_EVENTS if e in events] + [
        e for e in events if e not in WEBHOOK_EVENTS
    ]
    hook.description = (description or "").strip()
    hook.is_active = is_active
    if new_secret:
        hook.secret = secrets.token_hex(32)
    hook.full_clean()
    hook.save()
    return hook


@transaction.atomic
def webhook_set_active(*, hook: Webhook, is_active: bool) -> Webhook:
    hook.is_active = is_active
    hook.save(update_fields=["is_active"])
    return hook
