"""Webhooks do not reach inside the network: not at save time, not after DNS answers differently
at send time, not through a redirect. Receivers are real sockets on 127.0.0.1; where a test needs
a name to resolve somewhere, socket.getaddrinfo answers as the test says (tests.api.receivers)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys

import pytest
import trustme
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone, translation

from leakmap.api import netguard, webhooks
from leakmap.api.models import Webhook, WebhookDelivery
from leakmap.crm import services
from tests.api.receivers import FakeDNS, Receiver

PUBLIC = "93.184.215.14"


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(statuses=(), **kwargs) -> Receiver:
        server = Receiver(list(statuses), **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def _url_error(url: str) -> str:
    try:
        Webhook(url=url, events=["deal.won"]).full_clean()
    except ValidationError as exc:
        return " ".join(exc.message_dict.get("url", []))
    return ""


def _queue_one(rep, django_capture_on_commit_callbacks, url: str) -> WebhookDelivery:
    # Stored as a row written before these checks existed, or saved while DNS said "public".
    Webhook.objects.create(url=url, events=["lead.created"], secret="s3cret")
    with django_capture_on_commit_callbacks(execute=True):
        services.lead_create(services.LeadInput(name="张三", owner=rep))
    return WebhookDelivery.objects.get()


# --- Save time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("http://127.8.9.10:8000/hook", "127.8.9.10 is a loopback address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://localhost/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://admin.localhost/", "admin.localhost resolves to 127.0.0.1, a loopback address"),
        ("http://2130706433/hook", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/hook", "0177.0.0.1 resolves to 127.0.0.1, a loopback address"),
        ("http://0x7f.1/hook", "0x7f.1 resolves to 127.0.0.1, a loopback address"),
        ("http://127.1/hook", "127.1 resolves to 127.0.0.1, a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:7f00:1]/hook", "::ffff:7f00:1 is a loopback address"),
        ("http://[64:ff9b::7f00:1]/hook", "64:ff9b::7f00:1 is a loopback address"),
        ("http://[2002:7f00:1::]/hook", "2002:7f00:1:: is a loopback address"),
        ("http://10.0.0.1/hook", "10.0.0.1 is a private"),
        ("http://172.16.5.4/hook", "172.16.5.4 is a private"),
        ("http://192.168.1.20/hook", "192.168.1.20 is a private"),
        ("http://100.64.0.1/hook", "100.64.0.1 is a private"),
        ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a private"),
        ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1 is a private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 is a link-local address"),
        ("http://100.100.100.200/latest/meta-data/", "is a cloud metadata service address"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a cloud metadata service address"),
        ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
        ("http://[ff02::1]/hook", "ff02::1 is a multicast address"),
        ("http://240.0.0.1/hook", "240.0.0.1 is a reserved address"),
        ("http://255.255.255.255/hook", "255.255.255.255 is a reserved address"),
        ("http://0.0.0.0:8000/hook", "0.0.0.0 is an unspecified address"),
        ("http://0/hook", "0 resolves to 0.0.0.0, an unspecified address"),
        ("http://[::]/hook", ":: is an unspecified address"),
    ],
)
def test_it_refuses_to_save_a_webhook_to_an_inside_address(db, url, says):
    error = _url_error(url)
    assert says in error
    assert "only public addresses are allowed" in error


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://1.1.1.1/", "//1.1.1.1/"]
)
def test_it_refuses_to_save_a_webhook_that_is_not_http_or_https(db, url):
    assert "Only http and https URLs are allowed" in _url_error(url)


def test_it_explains_the_refusal_in_the_installs_language(db):
    with translation.override("zh-hans"):
        assert _url_error("http://localhost:8000/hook") == (
            "localhost 解析为 127.0.0.1，属于回环地址；只允许公网地址。"
            " 如需向内网发送 Webhook，请设置 LEAKMAP_WEBHOOK_ALLOW_PRIVATE=1。"
        )
        assert _url_error("ftp://hooks.example.com/") == "只允许 http 和 https 地址，不支持“ftp”。"


def test_it_refuses_a_name_that_resolves_inside_at_save_time(db, dns):
    dns.set("erp.example.com", [PUBLIC, "10.1.2.3"])
    assert "erp.example.com resolves to 10.1.2.3, a private" in _url_error(
        "https://erp.example.com/hook"
    )


def test_it_saves_a_public_receiver(db, dns):
    dns.set("hooks.example.com", [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert _url_error("https://hooks.example.com/leakmap?team=1") == ""
    assert _url_error(f"http://{PUBLIC}:8080/hook") == ""
    # A name that does not resolve yet is saved; every send resolves and checks it again.
    dns.set("not-yet.example.com", [])
    assert _url_error("https://not-yet.example.com/hook") == ""


def test_it_saves_intranet_receivers_only_when_private_addresses_are_allowed(db, settings):
    intranet = ["http://10.0.0.1/hook", "http://127.0.0.1:9000/hook", "http://localhost/h"]
    assert all("LEAKMAP_WEBHOOK_ALLOW_PRIVATE=1" in _url_error(url) for url in intranet)
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = True
    assert [_url_error(url) for url in intranet] == ["", "", ""]
    # Nothing legitimate listens on these; the setting does not open them.
    for url, says in [
        ("http://169.254.169.254/", "link-local"),
        ("http://100.100.100.200/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("ftp://10.0.0.1/", "Only http and https"),
    ]:
        error = _url_error(url)
        assert says in error
        assert "LEAKMAP_WEBHOOK_ALLOW_PRIVATE" not in error


def test_it_refuses_an_inside_address_in_the_admin_and_saves_nothing(admin_user):
    client = Client()
    client.force_login(admin_user)
    for url, says in [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("ftp://hooks.example.com/x", "ftp"),
        ("http://[::ffff:127.0.0.1]:8000/", "::ffff:127.0.0.1"),
    ]:
        response = client.post(
            "/admin/api/webhook/add/",
            {"url": url, "events": ["deal.won"], "secret": "s", "is_active": "on"},
            headers={"accept-language": "en"},
        )
        assert response.status_code == 200
        assert says in response.content.decode()
        assert "only public addresses are allowed" in response.content.decode() or says == "ftp"
    assert Webhook.objects.count() == 0


def test_it_reads_the_allow_private_setting_from_the_environment(tmp_path):
    def setting(value: str | None) -> subprocess.CompletedProcess:
        env = {**os.environ, "LEAKMAP_SECRET_KEY": "x"}
        env.pop("LEAKMAP_WEBHOOK_ALLOW_PRIVATE", None)
        if value is not None:
            env["LEAKMAP_WEBHOOK_ALLOW_PRIVATE"] = value
        code = "from leakmap.config import settings; print(settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE)"
        return subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=os.getcwd(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert setting(None).stdout.strip() == "False"
    assert setting("1").stdout.strip() == "True"
    assert setting("0").stdout.strip() == "False"
    wrong = setting("maybe")
    assert wrong.returncode != 0
    assert "LEAKMAP_WEBHOOK_ALLOW_PRIVATE='maybe': expected true or false" in wrong.stderr


# --- Send time ------------------------------------------------------------------------------


def test_it_refuses_at_send_time_when_the_name_now_resolves_inside(
    db, rep, dns, receivers, django_capture_on_commit_callbacks
):
    server = receivers()
    dns.set("hooks.example.com", [PUBLIC])
    url = f"http://hooks.example.com:{server.port}/hook"
    assert _url_error(url) == ""  # saved while DNS said public
    delivery = _queue_one(rep, django_capture_on_commit_callbacks, url)

    dns.set("hooks.example.com", ["127.0.0.1"])  # rebinding: the receiver is now "inside"
    t0 = timezone.now()
    assert webhooks.deliver_pending_webhooks(now=t0) == 0
    assert server.requests == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert "hooks.example.com resolves to 127.0.0.1, a loopback address" in delivery.last_error
    assert delivery.next_attempt_at == t0 + webhooks.backoff(1)  # retried like any failure


@pytest.mark.parametrize("spelled", ["2130706433", "0x7f000001", "127.1", "localhost"])
def test_it_refuses_at_send_time_a_stored_url_that_spells_loopback(
    db, rep, receivers, django_capture_on_commit_callbacks, spelled
):
    server = receivers()
    delivery = _queue_one(
        rep, django_capture_on_commit_callbacks, f"http://{spelled}:{server.port}/hook"
    )
    webhooks.deliver_pending_webhooks()
    assert server.requests == []
    delivery.refresh_from_db()
    assert "loopback address" in delivery.last_error


def test_it_connects_to_the_very_address_it_checked(
    db, rep, dns, receivers, django_capture_on_commit_callbacks, monkeypatch
):
    """One resolution per attempt: a second answer (the receiver on 127.0.0.1) is never asked
    for, and the socket goes to the checked address, not to the name."""
    server = receivers()
    dns.set("hooks.example.com", [PUBLIC], ["127.0.0.1"])
    delivery = _queue_one(
        rep, django_capture_on_commit_callbacks, f"http://hooks.example.com:{server.port}/hook"
    )
    connected = []
    real_connect = socket.create_connection

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        if address[0] == "127.0.0.1":
            return real_connect(address, *args, **kwargs)
        raise ConnectionRefusedError(111, "Connection refused")  # no packet leaves the test

    monkeypatch.setattr(socket, "create_connection", create_connection)
    webhooks.deliver_pending_webhooks()
    assert connected == [(PUBLIC, server.port)]
    assert dns.asked == ["hooks.example.com"]
    assert server.requests == []
    delivery.refresh_from_db()
    assert "Connection refused" in delivery.last_error


def test_it_delivers_to_a_loopback_receiver_only_when_private_addresses_are_allowed(
    db, rep, dns, receivers, settings, django_capture_on_commit_callbacks
):
    server = receivers()
    dns.set("crm-hooks.internal", ["127.0.0.1"])
    delivery = _queue_one(
        rep,
        django_capture_on_commit_callbacks,
        f"http://crm-hooks.internal:{server.port}/hook?team=7",
    )
    t0 = timezone.now()
    assert webhooks.deliver_pending_webhooks(now=t0) == 0  # the default refuses it
    assert server.requests == []

    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = True
    assert webhooks.deliver_pending_webhooks(now=t0 + webhooks.backoff(1)) == 1
    [(headers, body)] = server.requests
    assert server.methods == [("POST", "/hook?team=7")]
    assert headers["Host"] == f"crm-hooks.internal:{server.port}"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Leakmap-Signature"] == f"sha256={expected}"
    assert json.loads(body)["data"]["lead"]["name"] == "张三"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)


def test_it_keeps_the_host_name_for_tls_while_connecting_to_the_checked_address(dns, receivers):
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.internal").configure_cert(server_context)
    server = receivers(tls_context=server_context)
    dns.set("hooks.internal", ["127.0.0.1"])
    dns.set("other.internal", ["127.0.0.1"])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    reply = netguard.post(
        f"https://hooks.internal:{server.port}/hook",
        b"{}",
        {"Content-Type": "application/json"},
        allow_private=True,
        timeout=5,
        tls_context=client_context,
    )
    assert reply.status == 200
    assert server.sni == ["hooks.internal"]
    assert server.requests[0][0]["Host"] == f"hooks.internal:{server.port}"

    # The certificate is checked against the URL's name, not the address connected to.
    with pytest.raises(ssl.SSLCertVerificationError):
        netguard.post(
            f"https://other.internal:{server.port}/hook",
            b"{}",
            {},
            allow_private=True,
            timeout=5,
            tls_context=client_context,
        )
    assert len(server.requests) == 1


# --- Redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_it_never_follows_a_redirect(
    db, rep, settings, receivers, django_capture_on_commit_callbacks, status
):
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = True
    target = receivers()
    server = receivers([status], location=target.url + "?stolen=1")
    delivery = _queue_one(rep, django_capture_on_commit_callbacks, server.url)
    t0 = timezone.now()
    assert webhooks.deliver_pending_webhooks(now=t0) == 0
    assert target.requests == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "pending",
        1,
        status,
    )
    assert f"redirect to {target.url}?stolen=1 not followed" in delivery.last_error
    assert [a.status_code for a in delivery.attempt_log.all()] == [status]

    # Retried like any failed attempt; the receiver's own 200 then delivers it.
    assert webhooks.deliver_pending_webhooks(now=t0 + webhooks.backoff(1)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [m for m, _path in server.methods] == ["POST", "POST"]
    assert target.requests == []


def test_it_gives_up_on_a_receiver_that_always_redirects(
    db, rep, settings, receivers, django_capture_on_commit_callbacks
):
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = True
    target = receivers()
    server = receivers([302] * webhooks.MAX_ATTEMPTS, location=target.url)
    delivery = _queue_one(rep, django_capture_on_commit_callbacks, server.url)
    now = timezone.now()
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.deliver_pending_webhooks(now=now)
        delivery.refresh_from_db()
        now = delivery.next_attempt_at or now
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "failed",
        webhooks.MAX_ATTEMPTS,
        302,
    )
    assert [a.status_code for a in delivery.attempt_log.all()] == [302] * webhooks.MAX_ATTEMPTS
    assert target.requests == []
    assert len({body for _headers, body in server.requests}) == 1  # the same signed body
