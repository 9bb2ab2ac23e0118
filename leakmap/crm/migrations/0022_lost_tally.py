"""crm_losttally: deals per (owner, stage, reached order, lost reason) with how many carry lost
notes and how many a competitor, kept by triggers on crm_deal — the design of 0018's lead
tally and 0019's deal tally (read 0018's docstring for why triggers, and why row triggers on
SQLite and statement triggers on PostgreSQL). The diagnosis of the whole company reads its
deals lost after negotiation from here: ~75 ms of row lookups at a million leads before.
SQLite's triggers share the deal tally's switch (TallySwitch.deals_paused): an import that
recounts one recounts both (crm.tallies.paused_by("deals")). The SQL is written out here on
purpose.
"""

from django.db import migrations, models

KEY = "owner_key, stage_id, reached_order, lost_reason_key"
SUMS = "n, with_notes, with_competitor"
# The columns the key and the sums read.
COLUMNS = ("owner_id", "stage_id", "reached_order", "lost_reason_id", "lost_notes", "competitor_id")


def key_of(r: str) -> str:
    return (
        f"COALESCE({r}.owner_id, 0), {r}.stage_id, {r}.reached_order,"
        f" COALESCE({r}.lost_reason_id, 0)"
    )


def with_notes(r: str) -> str:
    return f"(CASE WHEN {r}.lost_notes <> '' THEN 1 ELSE 0 END)"


def with_competitor(r: str) -> str:
    return f"(CASE WHEN {r}.competitor_id IS NOT NULL THEN 1 ELSE 0 END)"


SQLITE_ADD = f"""
    INSERT INTO crm_losttally ({KEY}, {SUMS}) VALUES ({key_of("NEW")}, 1, {with_notes("NEW")}, {with_competitor("NEW")})
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = n + 1,
        with_notes = with_notes + excluded.with_notes,
        with_competitor = with_competitor + excluded.with_competitor;
"""
SQLITE_REMOVE = f"""
    UPDATE crm_losttally SET
        n = n - 1,
        with_notes = with_notes - {with_notes("OLD")},
        with_competitor = with_competitor - {with_competitor("OLD")}
    WHERE owner_key = COALESCE(OLD.owner_id, 0) AND stage_id = OLD.stage_id
      AND reached_order = OLD.reached_order AND lost_reason_key = COALESCE(OLD.lost_reason_id, 0);
"""
SQLITE_COUNTING = "(SELECT deals_paused FROM crm_tallyswitch) IS NOT 1"
SQLITE_FORWARD = [
    f"CREATE TRIGGER crm_lost_tally_insert AFTER INSERT ON crm_deal WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_ADD} END",
    f"CREATE TRIGGER crm_lost_tally_delete AFTER DELETE ON crm_deal WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_REMOVE} END",
    f"CREATE TRIGGER crm_lost_tally_update AFTER UPDATE OF {', '.join(COLUMNS)} ON crm_deal"
    # Only rows whose counted columns changed (the import's fact refreshes set many).
    f" WHEN {SQLITE_COUNTING} AND ({' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in COLUMNS)})"
    f" BEGIN {SQLITE_REMOVE} {SQLITE_ADD} END",
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS crm_lost_tally_{event}" for event in ("insert", "delete", "update")
]


def pg_rows(table: str, sign: str) -> str:
    return (
        f"SELECT {key_of('r')}, {sign}1, {sign}{with_notes('r')}, {sign}{with_competitor('r')}"
        f" FROM {table} AS r"
    )


PG_UPSERT = f"""
    INSERT INTO crm_losttally AS t ({KEY}, {SUMS})
    SELECT {KEY}, sum(n), sum(with_notes), sum(with_competitor)
    FROM ({{rows}}) AS change ({KEY}, {SUMS})
    GROUP BY {KEY}
    HAVING sum(n) <> 0 OR sum(with_notes) <> 0 OR sum(with_competitor) <> 0
    ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = t.n + EXCLUDED.n,
        with_notes = t.with_notes + EXCLUDED.with_notes,
        with_competitor = t.with_competitor + EXCLUDED.with_competitor;
"""
PG_NEW, PG_OLD = pg_rows("new_rows", ""), pg_rows("old_rows", "-")
PG_FORWARD = [
    f"""
    CREATE FUNCTION crm_lost_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {PG_UPSERT.format(rows=PG_NEW)}
        ELSIF TG_OP = 'DELETE' THEN
            {PG_UPSERT.format(rows=PG_OLD)}
        ELSIF TG_OP = 'UPDATE' THEN
            {PG_UPSERT.format(rows=PG_NEW + " UNION ALL " + PG_OLD)}
        ELSE  -- TRUNCATE
            DELETE FROM crm_losttally;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER crm_lost_tally_insert AFTER INSERT ON crm_deal"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_lost_tally_apply()",
    "CREATE TRIGGER crm_lost_tally_delete AFTER DELETE ON crm_deal"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_lost_tally_apply()",
    "CREATE TRIGGER crm_lost_tally_update AFTER UPDATE ON crm_deal"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_lost_tally_apply()",
    "CREATE TRIGGER crm_lost_tally_truncate AFTER TRUNCATE ON crm_deal"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_lost_tally_apply()",
]
PG_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS crm_lost_tally_{event} ON crm_deal"
        for event in ("insert", "delete", "update", "truncate")
    ),
    "DROP FUNCTION IF EXISTS crm_lost_tally_apply()",
]
BACKFILL = (
    f"INSERT INTO crm_losttally ({KEY}, {SUMS})"
    f" SELECT {key_of('d')}, count(*), sum({with_notes('d')}), sum({with_competitor('d')})"
    " FROM crm_deal AS d GROUP BY 1, 2, 3, 4"
)


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in [*(PG_FORWARD if vendor == "postgresql" else SQLITE_FORWARD), BACKFILL]:
        schema_editor.execute(sql)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in PG_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0021_history_tally"),
    ]

    operations = [
        migrations.CreateModel(
            name="LostTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_key", models.BigIntegerField()),
                ("stage_id", models.BigIntegerField()),
                ("reached_order", models.IntegerField()),
                ("lost_reason_key", models.BigIntegerField()),
                ("n", models.BigIntegerField()),
                ("with_notes", models.BigIntegerField()),
                ("with_competitor", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("owner_key", "stage_id", "reached_order", "lost_reason_key"),
                        name="lost_tally_key",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
