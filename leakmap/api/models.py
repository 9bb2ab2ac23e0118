"""The doors' own records: API tokens, web-to-lead forms, webhooks and their delivery outbox.

Writes go through `leakmap.api.tokens` (tokens), `leakmap.api.webhooks` (deliveries) and
`leakmap.api.services` (web forms and webhooks, from the settings pages); the funnel's record
itself is only written by crm services.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from leakmap.api import netguard

# The lead fields a web form may show, in the order they are rendered.
FORM_FIELDS = {
    "name": _("Name"),
    "company": _("Company"),
    "email": _("E-mail"),
    "phone": _("Phone"),
    "title": _("Job title"),
    "product": _("Product of interest"),
    "region": _("Region"),
    "budget": _("Budget"),
    "message": _("Message"),
}

WEBHOOK_EVENTS = {
    "lead.created": _("Lead created"),
    "lead.converted": _("Lead converted"),
    "deal.stage_changed": _("Deal stage changed"),
    "deal.won": _("Deal won"),
    "deal.lost": _("Deal lost"),
}


class ApiToken(models.Model):
    """A bearer token for one user. Only a SHA-256 digest of the secret is stored; the short
    prefix is kept in clear so that a token can be found with one indexed lookup."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    # A read-only token may call GET (and HEAD/OPTIONS) only: for reporting tools and
    # dashboards that need the figures, not the right to change the record.
    read_only = models.BooleanField(_("read only"), default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def _split_lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class WebForm(models.Model):
    """A public web-to-lead form that admins embed on other sites."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    fields = models.JSONField(
        _("fields shown"),
        default=list,
        help_text=_("Lead fields the form asks for; the name is always asked."),
    )
    source = models.ForeignKey(
        "crm.Source",
        verbose_name=_("source it sets"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    use_assignment_rules = models.BooleanField(
        _("use assignment rules"),
        default=False,
        help_text=_("Leave the owner empty and let the lead assignment rules pick one."),
    )
    thank_you_text = models.TextField(_("thank-you text"), blank=True)
    redirect_url = models.URLField(_("redirect URL"), blank=True)
    allowed_origins = models.TextField(
        _("allowed CORS origins"),
        blank=True,
        help_text=_("One origin per line, e.g. https://www.example.com"),
    )
    min_fill_seconds = models.PositiveSmallIntegerField(_("minimum fill time (seconds)"), default=3)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("web form")
        verbose_name_plural = _("web forms")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = [f for f in self.fields or [] if f not in FORM_FIELDS]
        if unknown:
            errors["fields"] = _("Unknown fields: %(f)s") % {"f": ", ".join(unknown)}
        for origin in _split_lines(self.allowed_origins):
            scheme, _sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                errors["allowed_origins"] = _(
                    "“%(o)s” is not an origin (scheme://host[:port], no path)."
                ) % {"o": origin}
                break
        if errors:
            raise ValidationError(errors)

    @property
    def origins(self) -> list[str]:
        return [o.rstrip("/") for o in _split_lines(self.allowed_origins)]

    @property
    def shown_fields(self) -> list[str]:
        chosen = set(self.fields or []) | {"name"}
        return [f for f in FORM_FIELDS if f in chosen]


def webhook_url_error(url: str) -> str | None:
    """Why `url` cannot receive webhooks, for the user; None if it can. Delivery checks the
    resolved address again on every attempt (leakmap.api.webhooks)."""
    if not url:
        return None  # the field's own "required" error says it
    allow_private = settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE
    try:
        netguard.check_url(url, allow_private=allow_private)
    except netguard.Refused as refused:
        message = refused.message()
        if refused.kind in netguard.ALLOWED_WHEN_PRIVATE_ALLOWED:
            hint = _("To send webhooks to your own network, set LEAKMAP_WEBHOOK_ALLOW_PRIVATE=1.")
            message = f"{message} {hint}"
        return message
    return None


def _webhook_secret() -> str:
    return secrets.token_hex(32)


class Webhook(models.Model):
    url = models.URLField(_("URL"), max_length=500)
    events = models.JSONField(_("events"), default=list)
    secret = models.CharField(
        _("signing secret"),
        max_length=128,
        default=_webhook_secret,
        help_text=_("Deliveries carry X-Leakmap-Signature: sha256=HMAC-SHA256(body, secret)."),
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["url"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = [e for e in self.events or [] if e not in WEBHOOK_EVENTS]
        if unknown:
            errors["events"] = _("Unknown events: %(e)s") % {"e": ", ".join(unknown)}
        url_error = webhook_url_error(self.url)
        if url_error:
            errors["url"] = url_error
        if errors:
            raise ValidationError(errors)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Gave up")


class WebhookDelivery(models.Model):
    """Outbox row: one event for one webhook. The body is stored exactly as sent, so that every
    retry carries the same bytes and the same signature."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("event"), max_length=50)
    body = models.TextField(_("body"))
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(_("at"))
    status_code = models.PositiveSmallIntegerField(_("status code"), null=True)
    error = models.TextField(_("error"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        ordering = ["delivery", "at", "id"]
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


class IdempotencyKey(models.Model):
    """The first answer to an API write sent with an `Idempotency-Key` header, kept so that a
    retry of the same request by the same user gets that answer again instead of a second write.

    The row is written in the same transaction as the write it records: either both are there or
    neither is. Rows older than `leakmap.api.idempotency.TTL` are ignored and purged."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    key = models.CharField(_("key"), max_length=255)
    method = models.CharField(_("method"), max_length=10)
    path = models.TextField(_("path"))
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("status code"), null=True)
    content_type = models.CharField(_("content type"), max_length=100, blank=True)
    body = models.TextField(_("response body"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="api_idempotency_user_key")
        ]
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"
