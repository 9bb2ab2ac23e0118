"""How API callers prove who they are: a bearer token, or the web app's own session (+ CSRF)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from ninja.errors import HttpError
from ninja.security import HttpBearer, django_auth

from leakmap.api.tokens import token_lookup

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        found = token_lookup(token)
        if found is None:
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
