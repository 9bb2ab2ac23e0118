from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket

import pytest
from django.utils import timezone

from leakmap.api import webhooks
from leakmap.api.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from leakmap.config.jobs import PERIODIC_JOBS
from leakmap.crm import services
from tests.api.conftest import api_as
from tests.api.receivers import Receiver
from tests.factories import LeadFactory, lost_reason, make_deal, stage


@pytest.fixture
def allow_private(settings):
    # These receivers listen on 127.0.0.1, which webhooks reach only when a self-hoster allows
    # private addresses; tests/api/test_webhook_targets.py covers the default refusal.
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def receiver(allow_private):
    servers = []

    def make(statuses=()):
        server = Receiver(list(statuses))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def dead_url(allow_private):
    # A port that was just free and now has nobody listening: connections are refused.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


def _hook(url: str, *events: str) -> Webhook:
    return Webhook.objects.create(url=url, events=list(events), secret="s3cret")


def test_it_delivers_a_signed_json_body_when_a_lead_is_created(
    receiver, rep, django_capture_on_commit_callbacks
):
    server = receiver()
    hook = _hook(server.url, "lead.created")
    with django_capture_on_commit_callbacks(execute=True):
        lead = services.lead_create(
            services.LeadInput(name="张三", owner=rep, email="z@example.com")
        )
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1
    assert server.requests == []  # nothing is sent from the user's request

    assert webhooks.deliver_pending_webhooks() == 1
    headers, body = server.requests[0]
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Leakmap-Signature"] == f"sha256={expected}"
    assert headers["X-Leakmap-Event"] == "lead.created"
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert payload["event"] == "lead.created"
    assert payload["data"]["lead"]["id"] == lead.pk
    assert payload["data"]["lead"]["name"] == "张三"
    assert payload["data"]["lead"]["owner"] == "alice"

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert list(WebhookAttempt.objects.values_list("status_code", "error")) == [(200, "")]
    assert hook.deliveries.count() == 1
    assert webhooks.deliver_pending_webhooks() == 0  # delivered once, not again


def test_it_sends_each_event_only_to_its_subscribers(
    receiver, rep, django_capture_on_commit_callbacks
):
    server = receiver()
    _hook(server.url, "deal.stage_changed", "deal.won", "deal.lost", "lead.converted")
    deal = make_deal(owner=rep)
    lead = LeadFactory(owner=rep)
    with django_capture_on_commit_callbacks(execute=True):
        services.deal_move(deal=deal, stage=stage("proposal"), by=rep)
        services.deal_close_won(deal=deal, by=rep)
        other = make_deal(owner=rep)
        services.deal_close_lost(deal=other, lost_reason=lost_reason(), by=rep)
        services.lead_convert(lead=lead, by=rep)
    webhooks.deliver_pending_webhooks()
    sent = [json.loads(body) for _h, body in server.requests]
    assert sorted(p["event"] for p in sent) == [
        "deal.lost",
        "deal.stage_changed",
        "deal.stage_changed",
        "deal.stage_changed",
        "deal.won",
        "lead.converted",
    ]
    moved = [p for p in sent if p["event"] == "deal.stage_changed"]
    assert {(p["data"]["from_stage"], p["data"]["to_stage"]) for p in moved} == {
        ("qualification", "proposal"),
        ("proposal", "won"),
        ("qualification", "lost"),
    }
    won = next(p for p in sent if p["event"] == "deal.won")
    assert (won["data"]["deal"]["id"], won["data"]["deal"]["stage"]) == (deal.pk, "won")


def test_it_retries_after_a_500_and_then_succeeds(
    receiver, rep, django_capture_on_commit_callbacks
):
    server = receiver([500])
    _hook(server.url, "lead.created")
    with django_capture_on_commit_callbacks(execute=True):
        services.lead_create(services.LeadInput(name="x", owner=rep))
    t0 = timezone.now()

    assert webhooks.deliver_pending_webhooks(now=t0) == 0
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at == t0 + dt.timedelta(seconds=30)

    assert webhooks.deliver_pending_webhooks(now=t0 + dt.timedelta(seconds=29)) == 0
    assert len(server.requests) == 1  # not due yet

    assert webhooks.deliver_pending_webhooks(now=t0 + dt.timedelta(seconds=30)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 200]
    assert server.requests[0][1] == server.requests[1][1]  # same bytes, same signature
    assert (
        server.requests[0][0]["X-Leakmap-Signature"] == server.requests[1][0]["X-Leakmap-Signature"]
    )


def test_it_backs_off_exponentially_and_gives_up_after_the_last_attempt(
    dead_url, rep, django_capture_on_commit_callbacks
):
    assert [webhooks.backoff(n).total_seconds() for n in range(1, 12)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3840,
        7680,
        15360,
        21600,
    ]
    _hook(dead_url, "lead.created")
    with django_capture_on_commit_callbacks(execute=True):
        services.lead_create(services.LeadInput(name="x", owner=rep))
    now = timezone.now()
    waits = []
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.deliver_pending_webhooks(now=now)
        delivery = WebhookDelivery.objects.get()
        if delivery.next_attempt_at is None:
            break
        waits.append((delivery.next_attempt_at - now).total_seconds())
        now = delivery.next_attempt_at
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert (delivery.status, delivery.attempts) == ("failed", webhooks.MAX_ATTEMPTS)
    attempts = list(delivery.attempt_log.all())
    assert len(attempts) == webhooks.MAX_ATTEMPTS
    assert all(a.status_code is None and "Connection refused" in a.error for a in attempts)


def test_it_never_lets_a_dead_endpoint_touch_the_users_action(
    dead_url, rep, django_capture_on_commit_callbacks, monkeypatch
):
    _hook(dead_url, "deal.stage_changed")
    deal = make_deal(owner=rep)
    client = api_as(rep)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/deals/{deal.pk}/move", {"stage": "proposal"})
    assert response.status_code == 200
    assert response.json()["stage"] == "proposal"
    assert WebhookDelivery.objects.get().status == "pending"

    # Even a broken outbox write leaves the committed move alone.
    def explode(*args, **kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(webhooks, "enqueue", explode)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/deals/{deal.pk}/move", {"stage": "negotiation"})
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage.key == "negotiation"


def test_it_registers_the_delivery_job_with_the_scheduler():
    assert ("webhooks", 15, webhooks.deliver_pending_webhooks) in PERIODIC_JOBS


def test_it_lets_an_admin_register_a_webhook_for_chosen_events(admin_user):
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/api/webhook/add/",
        {
            "url": "https://hooks.example.com/leakmap",
            "events": ["deal.won", "deal.lost"],
            "secret": "topsecret",
            "description": "ERP",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    hook = Webhook.objects.get()
    assert (hook.events, hook.secret) == (["deal.won", "deal.lost"], "topsecret")
    refused = client.post(
        "/admin/api/webhook/add/",
        {"url": "https://x.example.com", "events": ["deal.exploded"], "secret": "s"},
    )
    assert refused.status_code == 200
    assert Webhook.objects.count() == 1
