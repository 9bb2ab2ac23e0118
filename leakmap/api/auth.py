"""How API callers prove who they are: a bearer token, or the web app's own session (+ CSRF).

A client address that sends LEAKMAP_LOGIN_FAILURE_LIMIT wrong tokens is refused with 429 and
Retry-After for the cool-off, before any token it sends is looked up (leakmap.accounts.lockout).
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from ninja.errors import HttpError
from ninja.security import HttpBearer, django_auth

from leakmap.accounts import lockout
from leakmap.api.tokens import token_lookup

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


class TooManyFailures(HttpError):
    """429 with the seconds to wait, which the API's error handler puts in Retry-After."""

    def __init__(self, retry_after: int):
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            429,
            _(
                "Too many wrong API tokens from this address; try again in %(s)s seconds "
                "(about %(m)s minutes)."
            )
            % {"s": retry_after, "m": minutes},
        )
        self.retry_after = retry_after


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        address = lockout.client_address(request) or "unknown"
        until = lockout.token_locked_until(address)
        if until is not None:
            raise TooManyFailures(lockout.retry_after_seconds(until))
        found = token_lookup(token)
        if found is None:
            lockout.token_failure_record(address)
            return None
        if found.read_only and request.method not in READ_METHODS:
            # Refused before the operation runs, so nothing is written.
            raise HttpError(
                403,
                _(
                    "This API token is read-only: it can read but not change anything. "
                    "Create a read-and-write token for this."
                ),
            )
        # Code below the API (selectors, services' `by`) sees the token's user.
        request.user = found.user
        return found.user


# Token first: a request carrying a bearer token never needs a session or a CSRF token.
API_AUTH = [TokenAuth(), django_auth]
