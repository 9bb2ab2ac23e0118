"""`Idempotency-Key` on API writes: a retried POST, PUT, PATCH or DELETE gets the first answer.

A client that did not hear the answer to a write (a timeout, a dropped connection) sends the
same request again with the same key; it gets the first answer again, marked
`Idempotent-Replayed: true`, and nothing is written twice. Keys belong to the caller: another
user's key of the same text is another key. The same key with another request (method, path
or body) is a 422; a key is kept for `TTL`.

Exactly once: the key's row is inserted at the start of a transaction that also holds the
write, and the answer is stored in it before the commit, so the row and the write commit
together or not at all. A second request with the same key meanwhile waits on the row's unique
index (PostgreSQL) or on the write lock (SQLite), and then replays the committed answer, or
runs itself if the first rolled back. On PostgreSQL it waits at most `WAIT_SECONDS`, then gets
a 409 "still in progress". Only 2xx answers are stored: an error wrote nothing, so a retry
after it simply runs again.

Requests without the header, reads, and callers that are not signed in are left exactly as
they were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import time

from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.api.models import IdempotencyKey

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
TTL = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255
# PostgreSQL: how long a request waits for another one with its key to finish.
WAIT_SECONDS = 10.0
# Expired keys are deleted by the next keyed request after this many seconds (per process).
PURGE_EVERY = 600.0
_last_purge: float | None = None
_LOCK_NOT_AVAILABLE = "55P03"


class _StillRunning(Exception):
    pass


def idempotent(run):
    """Wraps a django-ninja operation's `run` (api.add_decorator(..., mode="view"))."""

    @functools.wraps(run)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None or request.method not in WRITE_METHODS:
            return run(request, *args, **kwargs)
        user = _caller(request)
        if user is None:
            # Not signed in, or refused (a read-only token, a failed CSRF check): the operation
            # gives its own 401 or 403, and no key is looked at for a caller who may not write.
            return run(request, *args, **kwargs)
        if not _valid_key(key):
            return _error(
                422,
                _("An Idempotency-Key is 1 to %(n)s visible ASCII characters.")
                % {"n": MAX_KEY_LENGTH},
            )
        fingerprint = (
            request.method,
            request.get_full_path(),
            hashlib.sha256(request.body).hexdigest(),
        )
        _purge_now_and_then()
        return _run_once(user, key, fingerprint, lambda: run(request, *args, **kwargs))

    return wrapper


def _caller(request):
    """The user the API's authentication would find, without answering for it."""
    from leakmap.api.auth import API_AUTH

    for callback in API_AUTH:
        try:
            user = callback(request)
        except Exception:
            return None
        if user:
            return user
    return None


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in key)


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"detail": [{"field": HEADER, "message": message}]}, status=status)
    if status == 409:
        response["Retry-After"] = "1"
    return response


def _run_once(user, key: str, fingerprint: tuple[str, str, str], run) -> HttpResponse:
    with transaction.atomic():
        try:
            record = _claim(user, key, fingerprint)
        except _StillRunning:
            return _error(
                409, _("A request with this Idempotency-Key is still in progress; retry it soon.")
            )
        if record.status_code is not None:
            if (record.method, record.path, record.body_sha256) != fingerprint:
                return _error(
                    422,
                    _(
                        "This Idempotency-Key was already used for another request "
                        "(%(method)s %(path)s with another body); send a new key with a new "
                        "request."
                    )
                    % {"method": record.method, "path": record.path},
                )
            return _replay(record)

        response = run()
        if not 200 <= response.status_code < 300:
            # Nothing was written (services write all or nothing); a retry runs again.
            transaction.set_rollback(True)
            return response
        if response.streaming:
            record.delete()
            return response
        record.status_code = response.status_code
        record.content_type = response.get("Content-Type", "")[:100]
        record.body = response.content.decode(response.charset or "utf-8")
        record.save(update_fields=["status_code", "content_type", "body"])
        return response


def _claim(user, key: str, fingerprint: tuple[str, str, str]) -> IdempotencyKey:
    """The new row for this key (status_code None), or the answered row of an earlier request."""
    method, path, digest = fingerprint
    for _attempt in range(3):
        try:
            with _lock_timeout(WAIT_SECONDS), transaction.atomic():
                return IdempotencyKey.objects.create(
                    user=user, key=key, method=method, path=path, body_sha256=digest
                )
        except IntegrityError:
            pass
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise _StillRunning from exc
            raise
        record = IdempotencyKey.objects.filter(user=user, key=key).first()
        if record is None:
            continue  # the row went between the insert and the read: try again
        if record.created_at < timezone.now() - TTL:
            record.delete()
            continue
        return record
    raise _StillRunning


@contextlib.contextmanager
def _lock_timeout(seconds: float):
    """On PostgreSQL, bound the wait for another transaction's row lock; the setting is put back
    afterwards so that the write itself is not bound by it."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        (previous,) = cursor.fetchone()
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def _replay(record: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(
        record.body, status=record.status_code, content_type=record.content_type or None
    )
    response[REPLAYED_HEADER] = "true"
    return response


def _purge_now_and_then() -> None:
    """Delete expired keys, at most every PURGE_EVERY seconds per process, in its own short
    statement before the request's transaction; a failure only leaves them for next time."""
    global _last_purge
    now = time.monotonic()
    if _last_purge is not None and now - _last_purge < PURGE_EVERY:
        return
    _last_purge = now
    try:
        purge_expired()
    except DatabaseError:
        logger.warning("could not purge expired idempotency keys", exc_info=True)


def purge_expired(now: dt.datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - TTL
    deleted, _by_model = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
