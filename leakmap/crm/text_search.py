"""Which leads, deals, accounts and contacts contain a piece of text: the lists' search boxes.

A list shows the newest matches first. Walking the list's order until a page of matches
turns up is quick for a common term, but a term few rows have makes it read every row
through the order's index, one random lookup each (a term no lead has: 0.56-0.86 s at a
million leads). So the matches are first looked for, at most PROBE of them: with no more
than that, the list is those rows, sorted; with more, the term is common, and the ordered
walk finds a page of them after a few hundred rows.

The look-up reads the text index of migrations 0025-0027 and 0029 (SQLite: FTS5 trigram tables;
PostgreSQL: pg_trgm GIN indexes). A term of three characters or more is a phrase of its
trigrams. A term of one or two characters has no trigram. On SQLite it is found through the
trigrams that start with it: every indexed value ends in two END characters, so each of its
characters starts a trigram (0026). On PostgreSQL a GIN index of each value's characters
finds the rows holding all of the term's, and the LIKE keeps those where they stand together
(0027). Where the index cannot answer a short term (on SQLite a letter whose case its folding
might not match Python's, or a term that starts more than TRIGRAMS_PER_TERM trigrams, a
common one) it is looked for by a scan of the list's own rows in the table's order, which
reads the table front to back instead of in random order and stops at PROBE matches; a
common term finds them early.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection
from django.db.models import Func, Model, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Upper

from leakmap.crm.models import Account, Contact, Deal, Lead

# The searched columns of each model, per text index: on SQLite each is its own FTS5 table,
# `<table>_<suffix>` (migrations 0025-0026: names; 0029: phones and e-mails).
INDEXED: dict[type[Model], dict[str, tuple[str, ...]]] = {
    Lead: {"text": ("name", "company"), "phone_email_text": ("phone", "email")},
    Deal: {"text": ("name",)},
    Account: {"text": ("name",)},
    Contact: {"text": ("name",), "phone_email_text": ("phone", "email")},
}
TRIGRAM = 3
# More matches than this and the term counts as common (see the module's docstring).
PROBE = 500
# What ends every value in the SQLite index (migration 0026), and how many trigrams a short
# term may start before it counts as common (the cost of the OR grows with the trigrams).
END = "\x01"
TRIGRAMS_PER_TERM = 500


def containing(queryset: QuerySet, q: str, fields: tuple[str, ...]) -> QuerySet:
    """The rows of `queryset` that have `q` in one of `fields`, ignoring case — Django's
    icontains, with fields of related models written the same way ("account__name")."""
    if len(q) < TRIGRAM:
        found = _few_containing_at_paths(queryset.model, q, fields)
        if found is not None:
            return queryset.filter(found)
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
    found = _few_containing_at_paths(queryset.model, q, fields)
    if found is None:
        return queryset.filter(_any_contains(q, fields))
    return queryset.filter(found)


def _few_containing_at_paths(model: type[Model], q: str, fields: tuple[str, ...]) -> Q | None:
    """The condition "pk (or the related row's pk) is one the index found" for `fields`, which
    may be columns of related models; None when the index cannot tell (few_containing)."""
    columns_at: dict[str, list[str]] = defaultdict(list)
    for field in fields:
        path, _, column = field.rpartition("__")
        columns_at[path].append(column)
    found = Q()
    for path, columns in columns_at.items():
        ids = few_containing(_model_at(model, path), q, tuple(columns))
        if ids is None:
            return None
        found |= Q(**{f"{path}__in" if path else "pk__in": ids})
    return found


def few_containing(model: type[Model], q: str, columns: tuple[str, ...]) -> list[int] | None:
    """The ids of `model`'s rows with `q` in one of `columns`, read from the text index; None
    when the index cannot tell (see the module's docstring) or there are over PROBE."""
    suffix = next((k for k, held in INDEXED[model].items() if set(columns) <= set(held)), None)
    if suffix is None:
        raise ValueError(f"{model.__name__} has no text index on {columns}")
    if connection.vendor == "sqlite":
        if END in q:
            return None  # it would match the ends of values
        table = f"{model._meta.db_table}_{suffix}"
        if len(q) >= TRIGRAM:
            phrases = [q]
        else:
            phrases = _trigrams_starting_with(table, q)
            if phrases is None:
                return None
            if not phrases:
                return []
        # FTS5 phrases: the text as it is, its quotes doubled; trigrams fold case.
        quoted = " OR ".join('"' + phrase.replace('"', '""') + '"' for phrase in phrases)
        query = f"{{{' '.join(columns)}}} : ({quoted})"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT rowid FROM {table} WHERE {table} MATCH %s LIMIT %s", [query, PROBE + 1]
            )
            ids = [row[0] for row in cursor.fetchall()]
    elif len(q) < TRIGRAM:
        # Rows holding each of the term's characters (the indexes of 0027), then the LIKE.
        matches = model._base_manager.filter(_characters_and_contains(q, columns)).order_by()
        ids = list(matches.values_list("pk", flat=True)[: PROBE + 1])
    else:
        # icontains compares UPPER(column::text), the expression the GIN indexes hold.
        # No ORDER BY (a model's default ordering would invite a walk of its index instead).
        matches = model._base_manager.filter(_any_contains(q, columns)).order_by()
        ids = list(matches.values_list("pk", flat=True)[: PROBE + 1])
    return ids if len(ids) <= PROBE else None


def _trigrams_starting_with(table: str, q: str) -> list[str] | None:
    """The trigrams of the SQLite text index `table` that begin with the one or two characters
    `q`, as the index holds them (case folded); None when it cannot tell which (see the
    module's docstring)."""
    if any(not c.isascii() and c.lower() != c.upper() for c in q):
        return None
    folded = q.lower()
    with connection.cursor() as cursor:
        # fts5vocab seeks the range; the last character a trigram can have closes it.
        cursor.execute(
            f"SELECT term FROM {table}_trigrams WHERE term >= %s AND term <= %s LIMIT %s",
            [folded, folded + chr(0x10FFFF) * (TRIGRAM - len(q)), TRIGRAMS_PER_TERM + 1],
        )
        trigrams = [row[0] for row in cursor.fetchall()]
    return trigrams if len(trigrams) <= TRIGRAMS_PER_TERM else None


def _characters_and_contains(q: str, columns: tuple[str, ...]) -> Q:
    """PostgreSQL: `q` in one of `columns` (icontains), with the condition the character
    indexes of migration 0027 answer: the value's characters include all of q's."""
    # PostgreSQL's own fields import psycopg: only here, where it is the database.
    from django.contrib.postgres.fields import ArrayField
    from django.contrib.postgres.fields.array import ArrayContains

    def characters(text) -> Func:
        # string_to_array(UPPER(text), NULL): the indexed expression for a column; for the
        # term, its characters as PostgreSQL's UPPER writes them (Python's differs: ß -> SS).
        return Func(
            Upper(text),
            function="string_to_array",
            template="%(function)s(%(expressions)s, NULL)",
            output_field=ArrayField(TextField()),
        )

    condition = Q()
    for column in columns:
        in_value = characters(Cast(column, TextField()))
        of_term = characters(Value(q, output_field=TextField()))
        condition |= Q(ArrayContains(in_value, of_term), **{f"{column}__icontains": q})
    return condition


def _any_contains(q: str, fields, lookup: str = "icontains") -> Q:
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__{lookup}": q})
    return condition


def _model_at(model: type[Model], path: str) -> type[Model]:
    for name in path.split("__") if path else ():
        model = model._meta.get_field(name).related_model
    return model
