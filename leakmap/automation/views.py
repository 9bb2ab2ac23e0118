"""The notification list and its marks. Thin: a user only ever reaches their own rows."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from leakmap.automation import services
from leakmap.automation.models import Notification

PAGE_SIZE = 50


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


@require_GET
@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    qs = Notification.objects.filter(recipient=request.user).order_by("-created_at", "-id")
    if request.GET.get("unread"):
        qs = qs.filter(read_at__isnull=True)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "automation/notification_list.html",
        {"page": page, "only_unread": bool(request.GET.get("unread"))},
    )


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
    services.notifications_mark_all_read(user=request.user)
    return _back(request, "automation:notifications")
