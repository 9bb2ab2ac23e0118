"""Keyset (cursor) pagination: stable under concurrent inserts, cheap at any depth.

Rows are ordered by (sort field, id) — (created_at, id) by default — and the cursor carries the
last row's pair, signed so that it is opaque and cannot be forged into another query.
"""

from __future__ import annotations

from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

SALT = "leakmap.api.cursor"


def _encode(ordering: str, value, pk: int) -> str:
    return signing.dumps([ordering, None if value is None else str(value), pk], salt=SALT)


def _decode(cursor: str, ordering: str) -> tuple[str | None, int]:
    try:
        saved_ordering, value, pk = signing.loads(cursor, salt=SALT)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise ValidationError({"cursor": _("This cursor is not valid.")}) from exc
    if saved_ordering != ordering:
        raise ValidationError({"cursor": _("This cursor belongs to another ordering.")})
    return value, pk


def paginate(
    qs: QuerySet, *, ordering: str, cursor: str | None, limit: int
) -> tuple[list, str | None]:
    """One page of `qs` ordered by `ordering` ("field" or "-field", never null), then id."""
    descending = ordering.startswith("-")
    field = ordering.lstrip("-")
    if cursor:
        raw, pk = _decode(cursor, ordering)
        model_field = qs.model._meta.get_field(field)
        value = model_field.to_python(raw)
        op = "lt" if descending else "gt"
        qs = qs.filter(Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk}))
    order = [f"-{field}", "-pk"] if descending else [field, "pk"]
    rows = list(qs.order_by(*order)[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode(ordering, getattr(last, field), last.pk)
    return rows, next_cursor
