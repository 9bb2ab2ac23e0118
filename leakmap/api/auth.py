"""How API callers prove who they are: a bearer token, or the web app's own session (+ CSRF)."""

from __future__ import annotations

from ninja.security import HttpBearer, django_auth

from leakmap.api.tokens import token_authenticate


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        user = token_authenticate(token)
        if user is not None:
            # Code below the API (selectors, services' `by`) sees the token's user.
            request.user = user
        return user


# Token first: a request carrying a bearer token never needs a session or a CSRF token.
API_AUTH = [TokenAuth(), django_auth]
