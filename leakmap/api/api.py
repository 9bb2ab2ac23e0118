"""The REST API object: routers, authentication, JSON errors and the vendored docs page."""

from __future__ import annotations

import json
import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.docs import Swagger

from leakmap.api.auth import API_AUTH
from leakmap.api.idempotency import idempotent
from leakmap.api.routers import accounts, activities, deals, leads, reports

logger = logging.getLogger(__name__)

# Where ninja puts a value in `loc` before the field's own name.
_LOCATIONS = {"body", "query", "path", "header", "cookie", "form", "file"}


class VendoredSwagger(Swagger):
    """Swagger UI from leakmap/api/static (swagger-ui-dist from npm), never from a CDN."""

    template = "api/docs.html"

    def render_page(self, request, api, **kwargs):
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        get_token(request)  # "Try it out" rides on the session: it needs the CSRF cookie

        response = render(
            request,
            self.template,
            {"swagger_settings": json.dumps(self.settings), "api": api},
        )
        # Swagger UI injects <style> elements; its scripts are files like every other page's.
        response.csp_inline_style_elements = True
        return response


api = NinjaAPI(
    title="leakmap",
    version="1",
    description=(
        "The leakmap CRM: leads, deals, accounts, contacts, activities and reports. "
        "Authenticate with `Authorization: Bearer <token>` (create one at /api/tokens/). "
        "A read-only token gets 403 on anything but GET. "
        "A write (POST, PUT, PATCH, DELETE) may carry an `Idempotency-Key` header (1-255 "
        "visible ASCII characters, unique per request): a retry with the same key and the same "
        "body gets the first answer again (marked `Idempotent-Replayed: true`) and writes "
        "nothing; the same key with another request is a 422. Keys are kept for 24 hours."
    ),
    urls_namespace="api-v1",
    auth=API_AUTH,
    docs=VendoredSwagger(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
api.add_router("", leads.router)
api.add_router("", deals.router)
api.add_router("", accounts.router)
api.add_router("", activities.router)
api.add_router("", reports.router)
# Around every operation, before its authentication runs: a keyed write is answered once.
api.add_decorator(idempotent, mode="view")


def _errors(items: list[tuple[str | None, str]]) -> dict:
    return {"detail": [{"field": f, "message": m} for f, m in items]}


def _field_of(loc) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
        # Body schemas sit under the parameter's name (`payload`); the client never sees it.
        if len(parts) > 1 and parts[0] in ("payload", "filters"):
            parts = parts[1:]
    return ".".join(parts) or None


@api.exception_handler(NinjaValidationError)
def _on_ninja_validation(request, exc: NinjaValidationError):
    items = [(_field_of(e.get("loc", ())), e.get("msg", _("Invalid value."))) for e in exc.errors]
    return api.create_response(request, _errors(items), status=422)


@api.exception_handler(DjangoValidationError)
def _on_django_validation(request, exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        items = [
            (None if field == "__all__" else field, message)
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    else:
        items = [(None, m) for m in exc.messages]
    return api.create_response(request, _errors(items), status=422)


@api.exception_handler(IntegrityError)
def _on_conflict(request, exc):
    # A race the checks before the write could not see (two clients, one external id): the
    # transaction was rolled back; the client may retry.
    logger.info("API write conflict: %s", exc)
    message = _("This conflicts with an existing record; nothing was saved.")
    return api.create_response(request, _errors([(None, message)]), status=409)


@api.exception_handler(Http404)
def _on_404(request, exc):
    return api.create_response(request, _errors([(None, _("Not found."))]), status=404)


@api.exception_handler(PermissionDenied)
def _on_denied(request, exc: PermissionDenied):
    # The caller may see the record but not change it (crm.policy); nothing was written.
    message = str(exc) or _("You may not change this record.")
    return api.create_response(request, _errors([(None, message)]), status=403)


@api.exception_handler(AuthenticationError)
def _on_auth(request, exc):
    response = api.create_response(
        request, _errors([(None, _("Authentication required: send a bearer token."))]), status=401
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def _on_http_error(request, exc: HttpError):
    response = api.create_response(request, _errors([(None, str(exc))]), status=exc.status_code)
    retry_after = getattr(exc, "retry_after", None)  # auth.TooManyFailures
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
