"""Which leads, deals, accounts and contacts contain a piece of text: the lists' search boxes.

A list shows the newest matches first. Walking the list's order until a page of matches
turns up is quick for a common term, but a term few rows have makes it read every row
through the order's index, one random lookup each (a term no lead has: 0.56-0.86 s at a
million leads). So the matches are first looked for, at most PROBE of them: with no more
than that, the list is those rows, sorted; with more, the term is common, and the ordered
walk finds a page of them after a few hundred rows.

The look-up reads the text index of migration 0025 (SQLite: FTS5 trigram tables;
PostgreSQL: pg_trgm GIN indexes) for a term of three characters or more. A shorter term has
no trigram: it is looked for by a scan of the list's own rows in the table's order, which
reads the table front to back instead of in random order and stops at PROBE matches (a
two-letter term no lead has: 0.22 s of SQLite for the million, the page 0.29 s — still a
scan; see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection
from django.db.models import Model, Q, QuerySet

from leakmap.crm.models import Account, Contact, Deal, Lead

# The searched columns of each model (migration 0025 indexes them).
INDEXED: dict[type[Model], tuple[str, ...]] = {
    Lead: ("name", "company"),
    Deal: ("name",),
    Account: ("name",),
    Contact: ("name",),
}
TRIGRAM = 3
# More matches than this and the term counts as common (see the module's docstring).
PROBE = 500


def containing(queryset: QuerySet, q: str, fields: tuple[str, ...]) -> QuerySet:
    """The rows of `queryset` that have `q` in one of `fields`, ignoring case — Django's
    icontains, with fields of related models written the same way ("account__name")."""
    if len(q) < TRIGRAM:
        # A term without case (most Chinese text) is compared as it is: the same rows, and
        # PostgreSQL then need not upper-case every value it reads (a count over the million
        # leads in psql: 0.66 -> 0.26 s).
        lookup = "contains" if q.upper() == q.lower() else "icontains"
        ids = list(
            queryset.order_by()
            .filter(_any_contains(q, fields, lookup))
            .values_list("pk", flat=True)[: PROBE + 1]
        )
        if len(ids) > PROBE:
            return queryset.filter(_any_contains(q, fields))
        return queryset.filter(pk__in=ids)
    columns_at: dict[str, list[str]] = defaultdict(list)
    for field in fields:
        path, _, column = field.rpartition("__")
        columns_at[path].append(column)
    found = Q()
    for path, columns in columns_at.items():
        model = _model_at(queryset.model, path)
        ids = few_containing(model, q, tuple(columns))
        if ids is None:
            return queryset.filter(_any_contains(q, fields))
        found |= Q(**{f"{path}__in" if path else "pk__in": ids})
    return queryset.filter(found)


def few_containing(model: type[Model], q: str, columns: tuple[str, ...]) -> list[int] | None:
    """The ids of `model`'s rows with `q` in one of `columns`, read from the text index; None
    when the index cannot tell (a term under three characters) or there are over PROBE."""
    if not set(columns) <= set(INDEXED[model]):
        raise ValueError(f"{model.__name__} has no text index on {columns}")
    if len(q) < TRIGRAM:
        return None
    if connection.vendor == "sqlite":
        table = f"{model._meta.db_table}_text"
        # An FTS5 phrase: the text as it is, its quotes doubled; trigrams fold case.
        quoted = q.replace('"', '""')
        phrase = f'{{{" ".join(columns)}}} : "{quoted}"'
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT rowid FROM {table} WHERE {table} MATCH %s LIMIT %s", [phrase, PROBE + 1]
            )
            ids = [row[0] for row in cursor.fetchall()]
    else:
        # icontains compares UPPER(column::text), the expression the GIN indexes hold.
        # No ORDER BY (a model's default ordering would invite a walk of its index instead).
        matches = model._base_manager.filter(_any_contains(q, columns)).order_by()
        ids = list(matches.values_list("pk", flat=True)[: PROBE + 1])
    return ids if len(ids) <= PROBE else None


def _any_contains(q: str, fields, lookup: str = "icontains") -> Q:
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__{lookup}": q})
    return condition


def _model_at(model: type[Model], path: str) -> type[Model]:
    for name in path.split("__") if path else ():
        model = model._meta.get_field(name).related_model
    return model
