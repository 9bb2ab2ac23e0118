"""The SQLite text index answers terms of one or two characters too (a two-character Chinese
name is a common search; without an index it read every lead: 0.3-0.6 s at a million).

Each indexed value now ends in two END characters (U+0001, which no name holds), so every
character of a value starts a trigram of the index ("李四" is indexed as "李四␁" and "四␁␁";
before, a value of two characters had no trigram at all). A term of one or two characters is
then in a value exactly when some trigram of the index starts with it, and an fts5vocab table
lists those trigrams by a range seek (crm.text_search). Terms of three characters or more match as before.

The FTS5 tables become contentless (content=''): their text is no longer the table's own, so
they cannot read it from there; the triggers hand each value over with its END characters
and, to take a row out, the same value again (FTS5's 'delete' command). Search reads only
rowids, so nothing is lost. PostgreSQL is unchanged (its pg_trgm indexes cannot seek a prefix
of a trigram).

Written out rather than imported, like 0025: a migration must not change when the code does.
"""

import importlib

from django.db import migrations

SEARCHED = {
    "crm_lead": ("name", "company"),
    "crm_deal": ("name",),
    "crm_account": ("name",),
    "crm_contact": ("name",),
}
END = "char(1, 1)"

_previous = importlib.import_module("leakmap.crm.migrations.0025_text_search")


def _forward(table: str, columns: tuple[str, ...]) -> list[str]:
    text = f"{table}_text"
    names = ", ".join(columns)
    new = ", ".join(f"NEW.{c} || {END}" for c in columns)
    old = ", ".join(f"OLD.{c} || {END}" for c in columns)
    add = f"INSERT INTO {text} (rowid, {names}) VALUES (NEW.id, {new});"
    remove = f"INSERT INTO {text} ({text}, rowid, {names}) VALUES ('delete', OLD.id, {old});"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return [
        *_previous._sqlite_backward(table),
        f"CREATE VIRTUAL TABLE {text} USING fts5({names}, content='', tokenize='trigram')",
        # The trigrams the index holds, with a range seek on them (text_search.short_term_ids).
        f"CREATE VIRTUAL TABLE {text}_trigrams USING fts5vocab({text}, 'row')",
        f"CREATE TRIGGER {text}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {text}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER {text}_update AFTER UPDATE OF {names} ON {table} WHEN {changed}"
        f" BEGIN {remove} {add} END",
        # The rows already there.
        f"INSERT INTO {text} (rowid, {names})"
        f" SELECT id, {', '.join(f'{c} || {END}' for c in columns)} FROM {table}",
    ]


def _backward(table: str, columns: tuple[str, ...]) -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {table}_text_trigrams",
        *_previous._sqlite_backward(table),
        *_previous._sqlite_forward(table, columns),
    ]


def pad_text_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table, columns in SEARCHED.items():
        for sql in _forward(table, columns):
            schema_editor.execute(sql)


def unpad_text_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table, columns in SEARCHED.items():
        for sql in _backward(table, columns):
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0025_text_search"),
    ]

    operations = [
        migrations.RunPython(pad_text_index, unpad_text_index),
    ]
