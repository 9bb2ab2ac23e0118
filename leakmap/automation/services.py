"""Writes of the automation app: notifications and the marks on them."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from leakmap.accounts.models import User
from leakmap.automation.models import Notification
from leakmap.automation.notifications import email_text, send_email_on_commit


def notification_create(
    *,
    recipient: User,
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    email: bool = False,
    at: dt.datetime | None = None,
) -> Notification:
    """An in-app notification, and the same text by e-mail when asked and the user has an
    address. `url` is a site path; the mail carries it as an absolute link.

    One INSERT, so no transaction of its own: a rules run creates thousands inside its firings'
    savepoints, and a nested savepoint each would double their round trips. The mail waits
    for the caller's commit either way."""
    notification = Notification.objects.create(
        recipient=recipient,
        kind=kind,
        title=title[:200],
        body=body,
        url=url[:300],
        created_at=at or timezone.now(),
    )
    if email and recipient.email:
        send_email_on_commit(
            to=recipient.email, subject=title, text=email_text(title=title, body=body, url=url)
        )
    return notification


def notification_mark_read(*, notification: Notification, at: dt.datetime | None = None) -> bool:
    """Mark one as read; returns False when it already was (the first read time is kept)."""
    return bool(
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=at or timezone.now()
        )
    )


def notifications_mark_all_read(
    *, user: User, kind: str | None = None, at: dt.datetime | None = None
) -> int:
    """Mark the user's unread notifications read (only those of `kind` when given); returns
    how many. Nobody else's are touched."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if kind is not None:
        unread = unread.filter(kind=kind)
    return unread.update(read_at=at or timezone.now())
