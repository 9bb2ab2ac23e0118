"""Pieces shared by the routers: error responses to document, list parameters."""

from __future__ import annotations

from ninja import Schema
from pydantic import Field

from leakmap.api.schemas import ErrorOut, Text, When

# Documented on every operation so that clients (and Schemathesis) know each error's shape.
# 429: too many wrong bearer tokens from the caller's address (api.auth), with Retry-After.
ERRORS = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    422: ErrorOut,
    429: ErrorOut,
}


class ListParams(Schema):
    cursor: Text(1000, 1) | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=200)
    owner: Text(150, 1) | None = Field(None, description="owner's username")
    created_from: When | None = None
    created_to: When | None = None
    q: Text(100, 1) | None = Field(
        None,
        description="text in the names (and a lead's company), or a whole e-mail address or phone number",
    )


def common_filters(qs, params: ListParams):
    if params.owner:
        qs = qs.filter(owner__username=params.owner)
    if params.created_from:
        qs = qs.filter(created_at__gte=params.created_from)
    if params.created_to:
        qs = qs.filter(created_at__lte=params.created_to)
    return qs
