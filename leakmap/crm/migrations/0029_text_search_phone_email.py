"""The phones and e-mails of leads and contacts get a text index too, so part of a number
("138001") or of an address ("acme.cn") is found through it instead of a scan of every
lead's phone or row (crm.selectors.search).

SQLite: a second FTS5 table per record, `<table>_phone_email_text`, made as 0026 makes the
names' (contentless, trigram, each value ending in two END characters, kept by row
triggers), with its fts5vocab table. Not columns of the names' table: a search of the names
filters that table by column, and FTS5 then reads the positions of every row holding the
term's trigrams in any column — with every e-mail in it, "example.com" in the names took
60-80 ms at 200k leads instead of 1. PostgreSQL: pg_trgm GIN indexes on the expressions
icontains compares, as 0025.

Written out rather than imported: a migration must not change when the code does.
"""

from django.db import migrations

SEARCHED = {"crm_lead": ("phone", "email"), "crm_contact": ("phone", "email")}
END = "char(1, 1)"


def _sqlite_forward(table: str, columns: tuple[str, ...]) -> list[str]:
    text = f"{table}_phone_email_text"
    names = ", ".join(columns)
    new = ", ".join(f"NEW.{c} || {END}" for c in columns)
    old = ", ".join(f"OLD.{c} || {END}" for c in columns)
    add = f"INSERT INTO {text} (rowid, {names}) VALUES (NEW.id, {new});"
    remove = f"INSERT INTO {text} ({text}, rowid, {names}) VALUES ('delete', OLD.id, {old});"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE {text} USING fts5({names}, content='', tokenize='trigram')",
        f"CREATE VIRTUAL TABLE {text}_trigrams USING fts5vocab({text}, 'row')",
        f"CREATE TRIGGER {text}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {text}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        f"CREATE TRIGGER {text}_update AFTER UPDATE OF {names} ON {table} WHEN {changed}"
        f" BEGIN {remove} {add} END",
        f"INSERT INTO {text} (rowid, {names})"
        f" SELECT id, {', '.join(f'{c} || {END}' for c in columns)} FROM {table}",
    ]


def _sqlite_backward(table: str) -> list[str]:
    text = f"{table}_phone_email_text"
    return [
        *(f"DROP TRIGGER IF EXISTS {text}_{event}" for event in ("insert", "delete", "update")),
        f"DROP TABLE IF EXISTS {text}_trigrams",
        f"DROP TABLE IF EXISTS {text}",
    ]


def add_phone_and_email(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        statements = [
            f"CREATE INDEX IF NOT EXISTS {table}_{column}_trgm ON {table}"
            f" USING gin (UPPER({column}::text) gin_trgm_ops)"
            for table, columns in SEARCHED.items()
            for column in columns
        ]
    else:
        statements = [sql for t, c in SEARCHED.items() for sql in _sqlite_forward(t, c)]
    for sql in statements:
        schema_editor.execute(sql)


def remove_phone_and_email(apps, schema_editor):
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
        ("crm", "0028_stage_stay_at_cover"),
    ]

    operations = [
        migrations.RunPython(add_phone_and_email, remove_phone_and_email),
    ]
