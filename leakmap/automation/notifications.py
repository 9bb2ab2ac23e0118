"""Where notifications point and how they travel by e-mail.

Links are built by these small functions so that they can switch to `reverse()` once the web
app's detail pages land; mails carry absolute links (settings.SITE_URL), the bell relative ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import translation

log = logging.getLogger(__name__)


def deal_url(deal_id: int) -> str:
    return f"/deals/{deal_id}/"


def lead_url(lead_id: int) -> str:
    return f"/leads/{lead_id}/"


def absolute_url(path: str) -> str:
    if not path or path.startswith(("http://", "https://")):
        return path
    return f"{settings.SITE_URL}{path if path.startswith('/') else '/' + path}"


def language_of(user) -> str:
    return getattr(user, "language", "") or settings.LANGUAGE_CODE


@contextlib.contextmanager
def in_language_of(user):
    """Texts for a user are written in the language they chose (else the install's)."""
    with translation.override(language_of(user)):
        yield


def email_text(*, title: str, body: str, url: str) -> str:
    parts = [body] if body else []
    if url:
        parts.append(absolute_url(url))
    return "\n\n".join(parts) + "\n"


_outbox: contextvars.ContextVar[list[EmailMessage] | None] = contextvars.ContextVar(
    "leakmap_outbox", default=None
)


def current_outbox() -> list[EmailMessage] | None:
    """The mails `batched_mail()` is holding, so a firing that is rolled back can drop its own."""
    return _outbox.get()


def _send(messages: list[EmailMessage]) -> None:
    """A mail server that is down is logged and undoes nothing: the in-app notifications stay."""
    try:
        with get_connection(fail_silently=False) as connection:
            connection.send_messages(messages)
    except Exception:
        log.exception(
            "could not send %d notification mail(s) to %s",
            len(messages),
            ", ".join(sorted({to for m in messages for to in m.to})),
        )


def send_email_on_commit(*, to: str, subject: str, text: str) -> None:
    """Send after the transaction commits, so a rolled-back firing never mails anyone. Inside
    `batched_mail()` the message waits for the batch instead."""
    message = EmailMessage(subject, text, settings.DEFAULT_FROM_EMAIL, [to])
    outbox = _outbox.get()
    if outbox is not None:
        outbox.append(message)
        return
    transaction.on_commit(lambda: _send([message]))


@contextlib.contextmanager
def batched_mail():
    """Collect the mails of a block (a rules run) and send them over one SMTP connection once
    the enclosing transaction commits, instead of one connection per notification."""
    outbox: list[EmailMessage] = []
    token = _outbox.set(outbox)
    try:
        yield outbox
    finally:
        _outbox.reset(token)
    if outbox:
        transaction.on_commit(lambda: _send(outbox))
