"""Back-off for guessed passwords and guessed API tokens.

Sign-in form (and the Django admin's): django-axes counts failures in its AccessAttempt table per
username and per client address; once either has LEAKMAP_LOGIN_FAILURE_LIMIT failures, each within
LEAKMAP_LOGIN_COOLOFF_MINUTES of the next, every attempt is refused before a password is checked
(the right one too) until the cool-off has passed since the last counted failure. Refused
attempts are not counted, so the time the lockout page names is the time it ends.

Bearer tokens: TokenFailure counts failed tokens per client address the same way; a locked
address gets 429 before its token is looked up, a valid token included.

Both live in the database, the one thing every worker and server shares.
"""

from __future__ import annotations

import datetime as dt
import math

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.db.models import F, Sum
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from leakmap.accounts.models import TokenFailure


def failure_limit(request=None, credentials=None) -> int:
    """AXES_FAILURE_LIMIT, and the API's: one setting, read at each call."""
    return settings.LEAKMAP_LOGIN_FAILURE_LIMIT


def cooloff(request=None) -> dt.timedelta:
    """AXES_COOLOFF_TIME, and the API's: one setting, read at each call."""
    return dt.timedelta(minutes=settings.LEAKMAP_LOGIN_COOLOFF_MINUTES)


def client_address(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE. REMOTE_ADDR only: X-Forwarded-For is whatever the client wrote
    unless a trusted proxy rewrites it (behind a proxy every client shares its address)."""
    return request.META.get("REMOTE_ADDR") or None


def _ends_at(rows, limit: int, window: dt.timedelta) -> dt.datetime | None:
    """When a lockout counted from `rows` (attempt_time, failures), newest first, ends: once
    the newest rows that reach the limit have a row that drops out of the window."""
    total = 0
    for at, failures in rows:
        total += failures
        if total >= limit:
            return at + window
    return None


def login_locked_until(
    *, username: str | None, address: str | None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """When the sign-in of `username` from `address` may be tried again, or None if it may now.
    Counts the way axes does: per username, per address, failures within the cool-off."""
    now = now or timezone.now()
    window = cooloff()
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - window).order_by("-attempt_time")
    ends = []
    for lookup in ({"username": username}, {"ip_address": address}):
        if next(iter(lookup.values())) is None:
            continue
        rows = recent.filter(**lookup).values_list("attempt_time", "failures_since_start")
        end = _ends_at(rows, failure_limit(), window)
        if end is not None and end > now:
            ends.append(end)
    return max(ends, default=None)


def retry_after_seconds(until: dt.datetime, now: dt.datetime | None = None) -> int:
    return max(1, math.ceil((until - (now or timezone.now())).total_seconds()))


def lockout_message(until: dt.datetime) -> str:
    local = timezone.localtime(until)
    minutes = max(1, math.ceil(retry_after_seconds(until) / 60))
    return _(
        "Too many failed sign-ins for this username or from this address. "
        "Sign-in is paused until %(time)s (in about %(minutes)s minutes); "
        "an admin can unlock it sooner."
    ) % {"time": date_format(local, "DATETIME_FORMAT"), "minutes": minutes}


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the sign-in page again, with when to try next, as 429."""
    username = (credentials or {}).get("username") or request.POST.get("username") or None
    until = login_locked_until(username=username, address=client_address(request))
    if until is None:  # the lock passed between the check and this page
        until = timezone.now() + dt.timedelta(seconds=1)
    form = AuthenticationForm(request, initial={"username": username or ""})
    response = render(
        request,
        "registration/login.html",
        {
            "form": form,
            "lockout": lockout_message(until),
            "next": request.POST.get("next") or request.GET.get("next", ""),
        },
        status=429,
    )
    response["Retry-After"] = str(retry_after_seconds(until))
    return response


def forget_after_sign_in(sender, request, user, **kwargs) -> None:
    """user_logged_in: a person who got in has their own failures from this address forgotten
    (a typo or two does not linger). Nobody else's: signing in to one's own account must not
    reset the count of an address that guesses other people's passwords."""
    if request is None:
        return
    AccessAttempt.objects.filter(
        username=user.get_username(), ip_address=client_address(request)
    ).delete()


# --- Bearer tokens ----------------------------------------------------------------------------


def token_locked_until(address: str, now: dt.datetime | None = None) -> dt.datetime | None:
    now = now or timezone.now()
    window = cooloff()
    row = (
        TokenFailure.objects.filter(
            address=address, failures__gte=failure_limit(), last_failure_at__gt=now - window
        )
        .values_list("last_failure_at", flat=True)
        .first()
    )
    return row + window if row is not None else None


@transaction.atomic
def token_failure_record(address: str, now: dt.datetime | None = None) -> TokenFailure:
    """One more failed token from `address`; a count whose last failure is older than the
    cool-off starts again at one."""
    now = now or timezone.now()
    window = cooloff()
    TokenFailure.objects.filter(last_failure_at__lte=now - window).delete()
    row, created = TokenFailure.objects.select_for_update().get_or_create(
        address=address, defaults={"failures": 1, "last_failure_at": now}
    )
    if not created:
        row.failures = F("failures") + 1
        row.last_failure_at = now
        row.save(update_fields=["failures", "last_failure_at"])
        row.refresh_from_db()
    return row


# --- Who is locked, and unlocking (admins) ----------------------------------------------------


def locked_usernames(now: dt.datetime | None = None) -> set[str]:
    """Usernames refused at the sign-in form right now because of their own failures."""
    now = now or timezone.now()
    return set(
        AccessAttempt.objects.filter(attempt_time__gte=now - cooloff(), username__isnull=False)
        .values("username")
        .annotate(total=Sum("failures_since_start"))
        .filter(total__gte=failure_limit())
        .values_list("username", flat=True)
    )


def locked_addresses(now: dt.datetime | None = None) -> list[str]:
    """Client addresses refused at the sign-in form or the API right now."""
    now = now or timezone.now()
    window = now - cooloff()
    form = (
        AccessAttempt.objects.filter(attempt_time__gte=window, ip_address__isnull=False)
        .values("ip_address")
        .annotate(total=Sum("failures_since_start"))
        .filter(total__gte=failure_limit())
        .values_list("ip_address", flat=True)
    )
    api = TokenFailure.objects.filter(
        failures__gte=failure_limit(), last_failure_at__gt=window
    ).values_list("address", flat=True)
    return sorted(set(form) | set(api))


@transaction.atomic
def lockout_clear(*, username: str = "", address: str = "") -> int:
    """Forget the failures of `username` (from every address) and/or of `address` (at the
    sign-in form and the API). Returns how many records went."""
    count = 0
    if username:
        count += AccessAttempt.objects.filter(username=username).delete()[0]
    if address:
        count += AccessAttempt.objects.filter(ip_address=address).delete()[0]
        count += TokenFailure.objects.filter(address=address).delete()[0]
    return count
