"""One notification mailed through a real SMTP server on localhost (aiosmtpd) and read back."""

from __future__ import annotations

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller

from leakmap.automation.models import Notification
from leakmap.automation.rules import run_rules
from tests.factories import T0, days, make_deal


class Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.DEFAULT_FROM_EMAIL = "leakmap@crm.example.com"
    settings.SITE_URL = "https://crm.example.com"
    yield inbox
    controller.stop()


def test_it_mails_the_owner_through_smtp_with_an_absolute_link_to_the_deal(
    smtp, only_rule, rep, django_capture_on_commit_callbacks
):
    only_rule("stage_sla", notify_manager=False)
    rep.email = "alice@example.com"
    rep.save()
    deal = make_deal(owner=rep, name="Acme ERP")

    with django_capture_on_commit_callbacks(execute=True):
        run_rules(as_of=T0 + days(8))

    assert len(smtp.messages) == 1
    recipients, message = smtp.messages[0]
    assert recipients == ["alice@example.com"]
    assert message["To"] == "alice@example.com"
    assert message["From"] == "leakmap@crm.example.com"
    # Python's header folding puts the encoded word on a continuation line; the space it leaves
    # is folding whitespace, which mail clients drop too.
    assert message["Subject"].strip() == "“Acme ERP” has been in Qualification for 8 days"
    body = message.get_content()
    assert f"https://crm.example.com/deals/{deal.pk}/" in body.split()
    assert "the stage's SLA is 7 days" in body


def test_it_mails_after_commit_only_those_notified_who_have_an_address(
    only_rule, rep, manager, mailoutbox, django_capture_on_commit_callbacks
):
    only_rule("stage_sla")
    rep.email = "alice@example.com"
    rep.save()  # the manager has no address: in-app only
    make_deal(owner=rep, name="One")
    make_deal(owner=rep, name="Two")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_rules(as_of=T0 + days(8))
    assert mailoutbox == []  # nothing leaves before the run commits
    for callback in callbacks:
        callback()
    assert sorted(m.subject for m in mailoutbox) == [
        "“One” has been in Qualification for 8 days",
        "“Two” has been in Qualification for 8 days",
    ]
    assert {tuple(m.to) for m in mailoutbox} == {("alice@example.com",)}


def test_it_keeps_the_notifications_when_the_mail_server_is_down(
    only_rule, rep, settings, caplog, django_capture_on_commit_callbacks
):
    only_rule("stage_sla", notify_manager=False)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    settings.EMAIL_TIMEOUT = 5
    rep.email = "alice@example.com"
    rep.save()
    make_deal(owner=rep)

    with django_capture_on_commit_callbacks(execute=True):
        result = run_rules(as_of=T0 + days(8))
    assert len(result.firings) == 1
    assert Notification.objects.filter(recipient=rep).count() == 1
    assert "could not send 1 notification mail(s) to alice@example.com" in caplog.text
