"""PostgreSQL: an index of the characters in each searched value, for search terms of one or
two characters, which have no trigram for pg_trgm to look up (a two-letter term no lead has
read every lead: 0.25-0.64 s at a million).

A GIN index on string_to_array(UPPER(column::text), NULL), the value's characters as an array:
a row holding a term holds each of its characters, so `@>` narrows the rows to those with
all of them, and the LIKE itself keeps the ones where they stand together (crm.text_search).
string_to_array is built in and cheap; the lead indexes took 1.3 and 3.8 s to build at a
million leads and hold 5 and 13 MB. SQLite answers short terms from its FTS5 tables (0026).

Written out rather than imported, like 0025: a migration must not change when the code does.
"""

from django.db import migrations

SEARCHED = {
    "crm_lead": ("name", "company"),
    "crm_deal": ("name",),
    "crm_account": ("name",),
    "crm_contact": ("name",),
}


def _indexes():
    for table, columns in SEARCHED.items():
        for column in columns:
            yield table, column, f"{table}_{column}_chars"


def create_character_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, name in _indexes():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table}"
            f" USING gin (string_to_array(UPPER({column}::text), NULL))"
        )


def drop_character_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _table, _column, name in _indexes():
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0026_text_search_short_terms"),
    ]

    operations = [
        migrations.RunPython(create_character_indexes, drop_character_indexes),
    ]
