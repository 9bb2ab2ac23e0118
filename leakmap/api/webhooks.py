"""Webhooks: an outbox row per (webhook, event), delivered later by a periodic job.

The crm events are sent after the user's transaction commits (and with send_robust), so writing
the outbox can never undo or block the user's action; delivering happens outside any request,
with retries and exponential backoff, and every attempt is logged. Each attempt goes through
leakmap.api.netguard: only to a public address (unless LEAKMAP_WEBHOOK_ALLOW_PRIVATE), checked
after resolving and connected to as checked, and a redirect counts as a failed attempt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import time
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from leakmap.api import netguard
from leakmap.api.models import (
    WEBHOOK_EVENTS,
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from leakmap.crm import events

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=6)
TIMEOUT_SECONDS = 10
# While one worker delivers a row, others leave it alone for this long.
LEASE = dt.timedelta(seconds=TIMEOUT_SECONDS * 3)


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next try after `attempts` failures: 30 s, 1 min, 2 min, 4 min, … ≤ 6 h."""
    return min(BACKOFF_BASE * (2 ** (attempts - 1)), BACKOFF_MAX)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --- Payloads -------------------------------------------------------------------------------


def _lead_data(lead) -> dict:
    from leakmap.api.schemas import LeadOut

    return LeadOut.from_orm(lead).model_dump(mode="json")


def _deal_data(deal) -> dict:
    from leakmap.api.schemas import DealOut

    return DealOut.from_orm(deal).model_dump(mode="json")


def enqueue(event: str, data: dict) -> int:
    """Write one pending delivery per active webhook subscribed to `event`."""
    hooks = [h for h in Webhook.objects.filter(is_active=True) if event in (h.events or [])]
    if not hooks:
        return 0
    now = timezone.now()
    with transaction.atomic():
        for hook in hooks:
            delivery_id = uuid.uuid4().hex
            body = json.dumps(
                {"id": delivery_id, "event": event, "occurred_at": now.isoformat(), "data": data},
                cls=DjangoJSONEncoder,
                ensure_ascii=False,
                sort_keys=True,
            )
            WebhookDelivery.objects.create(
                webhook=hook, event=event, body=body, next_attempt_at=now, created_at=now
            )
    return len(hooks)


def _logged(receiver):
    """send_robust swallows a receiver's exception silently: at least say so in the log."""

    def wrapper(sender, **kwargs):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("could not queue webhooks in %s", receiver.__name__)
            raise

    wrapper.__name__ = receiver.__name__
    return wrapper


@_logged
def _on_lead_created(sender, lead, **kwargs):
    enqueue("lead.created", {"lead": _lead_data(lead)})


@_logged
def _on_lead_converted(sender, lead, deal, **kwargs):
    enqueue("lead.converted", {"lead": _lead_data(lead), "deal": _deal_data(deal)})


@_logged
def _on_stage_changed(sender, deal, from_stage, to_stage, change, **kwargs):
    enqueue(
        "deal.stage_changed",
        {
            "deal": _deal_data(deal),
            "from_stage": from_stage.key if from_stage else None,
            "to_stage": to_stage.key,
            "at": change.at,
        },
    )


@_logged
def _on_won(sender, deal, **kwargs):
    enqueue("deal.won", {"deal": _deal_data(deal)})


@_logged
def _on_lost(sender, deal, **kwargs):
    enqueue("deal.lost", {"deal": _deal_data(deal)})


RECEIVERS = {
    "lead.created": _on_lead_created,
    "lead.converted": _on_lead_converted,
    "deal.stage_changed": _on_stage_changed,
    "deal.won": _on_won,
    "deal.lost": _on_lost,
}


def connect() -> None:
    for name, receiver in RECEIVERS.items():
        assert name in WEBHOOK_EVENTS
        events.ALL[name].connect(receiver, dispatch_uid=f"leakmap.api.webhooks:{name}")


# --- Delivery -------------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """One POST through netguard: the receiver's resolved address is checked on every attempt,
    and a redirect is never followed, so the answer is the receiver's own (a 3xx is a failure
    like a 5xx: following it would resend the signature to wherever it points, as a GET)."""
    try:
        reply = netguard.post(
            url,
            body,
            headers,
            allow_private=settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE,
            timeout=TIMEOUT_SECONDS,
        )
    except netguard.Refused as exc:
        return None, f"Refused: {exc}"[:1000]
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]
    if 200 <= reply.status < 300:
        return reply.status, ""
    error = f"HTTP {reply.status} {reply.reason}"
    if 300 <= reply.status < 400:
        error += f" (redirect to {reply.location or '?'} not followed)"
    return reply.status, error[:1000]


def deliver_one(delivery: WebhookDelivery, *, now: dt.datetime | None = None) -> bool:
    """One attempt at one delivery; records it and schedules the next try. True if delivered."""
    hook = delivery.webhook
    body = delivery.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "leakmap-webhooks/1",
        "X-Leakmap-Event": delivery.event,
        "X-Leakmap-Delivery": str(delivery.pk),
        "X-Leakmap-Signature": sign(body, hook.secret),
    }
    started = time.monotonic()
    status, error = _post(hook.url, body, headers)
    duration_ms = int((time.monotonic() - started) * 1000)
    now = now or timezone.now()
    ok = status is not None and 200 <= status < 300
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, at=now, status_code=status, error=error, duration_ms=duration_ms
        )
        delivery.attempts += 1
        delivery.last_status_code = status
        delivery.last_error = error
        if ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
        delivery.save(
            update_fields=[
                "attempts",
                "last_status_code",
                "last_error",
                "status",
                "delivered_at",
                "next_attempt_at",
            ]
        )
    if not ok:
        logger.warning("webhook %s to %s failed: %s", delivery.event, hook.url, error)
    return ok


def deliver_pending_webhooks(*, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Try every delivery that is due. Returns how many were delivered."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now, webhook__is_active=True
        )
        .select_related("webhook")
        .order_by("next_attempt_at", "id")[:limit]
    )
    delivered = 0
    for delivery in due:
        # Claim the row: only the worker whose update matches the time it read sends it.
        claimed = WebhookDelivery.objects.filter(
            pk=delivery.pk,
            status=DeliveryStatus.PENDING,
            next_attempt_at=delivery.next_attempt_at,
        ).update(next_attempt_at=now + LEASE)
        if not claimed:
            continue
        try:
            delivered += deliver_one(delivery, now=now)
        except Exception:  # one broken row must not stop the others
            logger.exception("webhook delivery %s crashed", delivery.pk)
    return delivered
