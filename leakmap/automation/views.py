"""The notification list and its marks. Thin: a user only ever reaches their own rows.

The list is grouped by local day and, within a day, by kind, so that a hundred unread
notifications read as a few headings ("Deal without follow-up · 40"); a kind filter and
"mark all read" (of every kind or of the one shown) clear them in bulk.
"""

from __future__ import annotations

import datetime as dt
from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from leakmap.automation import services
from leakmap.automation.models import Notification, RuleKey

PAGE_SIZE = 50
# A kind with more notifications than this on one day is folded under its heading.
FOLD_OVER = 3


def kind_label(kind: str) -> str:
    """What a kind is called on screen; a kind without a name (written by a script, say) is
    "Other" rather than its key."""
    return RuleKey(kind).label if kind in RuleKey.values else _("Other")


def day_label(day: dt.date, today: dt.date) -> str:
    if day == today:
        return _("Today")
    if day == today - dt.timedelta(days=1):
        return _("Yesterday")
    return date_format(day, "DATE_FORMAT")


def _get_notification_for_user(request: HttpRequest, notification_id: int) -> Notification:
    """Someone else's notification is indistinguishable from a missing one: 404."""
    try:
        return Notification.objects.get(pk=notification_id, recipient=request.user)
    except Notification.DoesNotExist as exc:
        raise Http404 from exc


def _back(request: HttpRequest, default: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def kinds_of(user) -> list[dict]:
    """Each kind the user has notifications of, with how many and how many unread: one
    GROUP BY over the user's rows."""
    rows = (
        Notification.objects.filter(recipient=user)
        .order_by()
        .values("kind")
        .annotate(total=Count("pk"), unread=Count("pk", filter=Q(read_at__isnull=True)))
    )
    kinds = [{**row, "label": kind_label(row["kind"])} for row in rows]
    return sorted(kinds, key=lambda k: (-k["unread"], str(k["label"])))


def grouped(notifications: list[Notification]) -> list[dict]:
    """The page's notifications by local day, newest first, and within a day by kind (the
    kind of the day's newest notification first)."""
    today = timezone.localdate()
    days = []
    for day, rows in groupby(notifications, key=lambda n: timezone.localdate(n.created_at)):
        rows = list(rows)
        by_kind: dict[str, list[Notification]] = {}
        for n in rows:
            by_kind.setdefault(n.kind, []).append(n)
        days.append(
            {
                "day": day,
                "label": day_label(day, today),
                "unread": sum(1 for n in rows if n.read_at is None),
                "kinds": [
                    {
                        "kind": kind,
                        "label": kind_label(kind),
                        "items": items,
                        "unread": sum(1 for n in items if n.read_at is None),
                        "folded": len(items) > FOLD_OVER,
                    }
                    for kind, items in by_kind.items()
                ],
            }
        )
    return days


@require_GET
@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    kinds = kinds_of(request.user)
    kind = request.GET.get("kind", "")
    only_unread = bool(request.GET.get("unread"))
    context = {"kinds": kinds, "kind": kind, "only_unread": only_unread}
    known = {k["kind"] for k in kinds} | set(RuleKey.values)
    if kind and kind not in known:
        context["filter_error"] = _("There is no kind “%(kind)s” of notifications.") % {
            "kind": kind
        }
        return render(request, "automation/notification_list.html", context, status=400)
    qs = Notification.objects.filter(recipient=request.user).order_by("-created_at", "-id")
    if only_unread:
        qs = qs.filter(read_at__isnull=True)
    if kind:
        qs = qs.filter(kind=kind)
        context["kind_label"] = kind_label(kind)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        page=page,
        days=grouped(list(page.object_list)),
        unread_total=sum(k["unread"] for k in kinds),
        unread_shown=sum(k["unread"] for k in kinds if not kind or k["kind"] == kind),
    )
    return render(request, "automation/notification_list.html", context)


@require_POST
@login_required
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = _get_notification_for_user(request, notification_id)
    services.notification_mark_read(notification=notification)
    # "Open" submits with next=<the notification's page>: read it and go there in one click.
    return _back(request, "automation:notifications")


@require_POST
@login_required
def notification_read_all(request: HttpRequest) -> HttpResponse:
    """Mark every unread notification of the user read, or only those of `kind`."""
    services.notifications_mark_all_read(user=request.user, kind=request.POST.get("kind") or None)
    return _back(request, "automation:notifications")
