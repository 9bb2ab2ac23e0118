"""Which leads, deals, accounts and contacts contain a piece of text: the lists' search boxes.

A substring search must otherwise read every row to know there is no 26th match (a term no
lead has: 0.56-0.84 s at a million leads). The text index of migration 0025 (SQLite: FTS5
trigram tables; PostgreSQL: pg_trgm GIN indexes) finds the rows with a term of three
characters or more without that scan. A list still wants the newest matches first, and a
common term ("科技", "Ltd") matches tens of thousands of rows: sorting them all would cost what
the scan did. So the index is asked for at most PROBE matches: when it has no more, the list is
those rows, sorted; when it has more, the term is common, and reading the list in its own
order finds its first page of matches after a few hundred rows. Terms under three characters
(no trigram) go that way too.
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
        matches = model._base_manager.filter(_any_contains(q, columns))
        ids = list(matches.values_list("pk", flat=True)[: PROBE + 1])
    return ids if len(ids) <= PROBE else None


def _any_contains(q: str, fields) -> Q:
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": q})
    return condition


def _model_at(model: type[Model], path: str) -> type[Model]:
    for name in path.split("__") if path else ():
        model = model._meta.get_field(name).related_model
    return model
