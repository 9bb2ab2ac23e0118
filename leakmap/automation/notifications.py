"""Where notifications point and how they travel by e-mail.

Links are built by these small functions so that they can switch to `reverse()` once the web
app's detail pages land; mails carry absolute links (settings.SITE_URL), the bell relative ones.
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.core.mail import send_mail
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


def send_email_on_commit(*, to: str, subject: str, text: str) -> None:
    """Send after the transaction commits, so a rolled-back firing never mails anyone; a mail
    server that is down is logged and does not undo the firing (the in-app notification stays)."""

    def send() -> None:
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
        except Exception:
            log.exception("could not send notification mail to %s", to)

    transaction.on_commit(send)
