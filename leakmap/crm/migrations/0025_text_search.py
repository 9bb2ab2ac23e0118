"""The search box's text index: which leads, deals, accounts and contacts contain a piece of
text, without reading every row (a term no lead has read all million of them: 0.56-0.84 s).

SQLite: an FTS5 table with the trigram tokenizer per searched table, its content the table's
own columns (external content: the text is stored once), kept by row triggers like the
tallies of 0018. PostgreSQL: pg_trgm GIN indexes on the expression Django's icontains compares,
UPPER(column::text), so the index answers the ORM's own query. Both find any substring of three
characters or more, ignoring case; shorter terms have no trigram and are searched by a scan
(crm.text_search reads them in order, and short terms match many rows early).

pg_trgm ships with PostgreSQL (Debian's postgresql-15, every managed service) and is a trusted
extension: the database's owner may create it.

The SQL is written out here rather than imported: a migration must not change when the code
does.
"""

from django.db import migrations

# Per searched table, its searched columns (crm.text_search.INDEXED repeats them).
SEARCHED = {
    "crm_lead": ("name", "company"),
    "crm_deal": ("name",),
    "crm_account": ("name",),
    "crm_contact": ("name",),
}


def _sqlite_forward(table: str, columns: tuple[str, ...]) -> list[str]:
    text = f"{table}_text"
    names = ", ".join(columns)
    new = ", ".join(f"NEW.{c}" for c in columns)
    old = ", ".join(f"OLD.{c}" for c in columns)
    add = f"INSERT INTO {text} (rowid, {names}) VALUES (NEW.id, {new});"
    remove = f"INSERT INTO {text} ({text}, rowid, {names}) VALUES ('delete', OLD.id, {old});"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE {text} USING fts5({names}, content='{table}',"
        " content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER {text}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {text}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER {text}_update AFTER UPDATE OF {names} ON {table} WHEN {changed}"
        f" BEGIN {remove} {add} END",
        # The rows already there.
        f"INSERT INTO {text} ({text}) VALUES ('rebuild')",
    ]


def _sqlite_backward(table: str) -> list[str]:
    text = f"{table}_text"
    return [
        *(f"DROP TRIGGER IF EXISTS {text}_{event}" for event in ("insert", "delete", "update")),
        f"DROP TABLE IF EXISTS {text}",
    ]


def _pg_forward(table: str, columns: tuple[str, ...]) -> list[str]:
    return [
        f"CREATE INDEX IF NOT EXISTS {table}_{column}_trgm ON {table}"
        f" USING gin (UPPER({column}::text) gin_trgm_ops)"
        for column in columns
    ]


def create_text_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        statements = ["CREATE EXTENSION IF NOT EXISTS pg_trgm"]
        for table, columns in SEARCHED.items():
            statements += _pg_forward(table, columns)
    else:
        statements = [sql for t, c in SEARCHED.items() for sql in _sqlite_forward(t, c)]
    for sql in statements:
        schema_editor.execute(sql)


def drop_text_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        statements = [
            f"DROP INDEX IF EXISTS {table}_{column}_trgm"
            for table, columns in SEARCHED.items()
            for column in columns
        ]
    else:
        statements = [sql for table in SEARCHED for sql in _sqlite_backward(table)]
    for sql in statements:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0024_search_indexes"),
    ]

    operations = [
        migrations.RunPython(create_text_index, drop_text_index),
    ]
