"""crm_staytally and crm_reachtally: the stage history's finished stays per (stage, hundredth of
a day) with their seconds, and its reaches per (order before, stage, hour), kept by triggers on
crm_stagechange — the design of 0018's lead tally (read its docstring for why triggers, and why
row triggers on SQLite and statement triggers on PostgreSQL). They hold what stage-time's and
the funnel's whole company read as grouped reads of the stage_stay_sorted and
stage_reach_sorted indexes: every entry of a million-lead history (~180 and ~160 ms), where
the tallies have some 34k and 17k rows.

What they count is the indexes' own conditions: a stay where stay_seconds is not null (the
generated columns stay_seconds and stay_centidays come from at and left_at), a reach where
reach_seconds is neither null nor 0 (crm.models.NONZERO_REACH; reach_hours comes from it).
SQLite's triggers read the generated columns of OLD and NEW as stored; an update fires only
where a counted value changed, as the fact refreshes rewrite whole histories with most values
unchanged. The switch is TallySwitch.history_paused (bulk.tallies_recounted). The SQL is
written out here on purpose.
"""

from django.db import migrations, models

# Per tally: its table, key, sums (their value for one entry `{r}`), which entries it counts,
# the base columns an UPDATE must set to change any of that, and the values compared then.
TALLIES = (
    {
        "table": "crm_staytally",
        "trigger": "crm_stay_tally",
        "key": ("to_stage_id", "stay_centidays"),
        "sums": {"n": "1", "seconds": "{r}.stay_seconds"},
        "counted": "{r}.stay_seconds IS NOT NULL",
        "columns": ("to_stage_id", "at", "left_at"),
        "compared": ("to_stage_id", "stay_seconds"),
    },
    {
        "table": "crm_reachtally",
        "trigger": "crm_reach_tally",
        "key": ("reached_before", "to_stage_id", "reach_hours"),
        "sums": {"n": "1"},
        # The condition of the stage_reach_sorted index, which the backfill then reads.
        "counted": "({r}.reach_seconds > 0 OR {r}.reach_seconds < 0)",
        "columns": ("reached_before", "to_stage_id", "reach_seconds"),
        "compared": ("reached_before", "to_stage_id", "reach_seconds"),
    },
)


def sqlite_add(t: dict) -> str:
    key, sums = ", ".join(t["key"]), ", ".join(t["sums"])
    values = ", ".join(
        [*(f"NEW.{k}" for k in t["key"]), *(v.format(r="NEW") for v in t["sums"].values())]
    )
    return f"""
    INSERT INTO {t["table"]} ({key}, {sums})
    SELECT {values} WHERE {t["counted"].format(r="NEW")}
    ON CONFLICT ({key}) DO UPDATE SET
        {", ".join(f"{s} = {s} + excluded.{s}" for s in t["sums"])};
"""


def sqlite_remove(t: dict) -> str:
    return f"""
    UPDATE {t["table"]} SET
        {", ".join(f"{s} = {s} - {v.format(r='OLD')}" for s, v in t["sums"].items())}
    WHERE {" AND ".join(f"{k} = OLD.{k}" for k in t["key"])} AND {t["counted"].format(r="OLD")};
"""


# As 0018: the triggers stand aside while an import recounts the tallies itself.
SQLITE_COUNTING = "(SELECT history_paused FROM crm_tallyswitch) IS NOT 1"


def sqlite_forward(t: dict) -> list[str]:
    name, old, new = t["trigger"], t["counted"].format(r="OLD"), t["counted"].format(r="NEW")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in t["compared"])
    return [
        # The entry's own condition first: most entries count in neither tally when written.
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON crm_stagechange"
        f" WHEN {new} AND {SQLITE_COUNTING} BEGIN {sqlite_add(t)} END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON crm_stagechange"
        f" WHEN {old} AND {SQLITE_COUNTING} BEGIN {sqlite_remove(t)} END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(t['columns'])}"
        f" ON crm_stagechange WHEN ({old} OR {new}) AND ({changed}) AND {SQLITE_COUNTING}"
        f" BEGIN {sqlite_remove(t)} {sqlite_add(t)} END",
    ]


SQLITE_FORWARD = [sql for t in TALLIES for sql in sqlite_forward(t)]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS {t['trigger']}_{event}"
    for t in TALLIES
    for event in ("insert", "delete", "update")
]


def pg_upsert(t: dict, tables: list[tuple[str, str]]) -> str:
    """The grouped upsert of the entries of transition `tables` [(name, sign)], in key order
    (two concurrent writers take the tally rows' locks in the same order)."""
    key, sums = ", ".join(t["key"]), ", ".join(t["sums"])
    rows = " UNION ALL ".join(
        f"SELECT {', '.join(f'r.{k}' for k in t['key'])},"
        f" {', '.join(sign + v.format(r='r') for v in t['sums'].values())}"
        f" FROM {table} AS r WHERE {t['counted'].format(r='r')}"
        for table, sign in tables
    )
    return f"""
    INSERT INTO {t["table"]} AS t ({key}, {sums})
    SELECT {key}, {", ".join(f"sum({s})" for s in t["sums"])}
    FROM ({rows}) AS change ({key}, {sums})
    GROUP BY {key}
    HAVING {" OR ".join(f"sum({s}) <> 0" for s in t["sums"])}
    ORDER BY {key}
    ON CONFLICT ({key}) DO UPDATE SET
        {", ".join(f"{s} = t.{s} + EXCLUDED.{s}" for s in t["sums"])};
"""


def pg_apply(tables: list[tuple[str, str]]) -> str:
    # Always the stays first, then the reaches: the same lock order in every writer.
    return "".join(pg_upsert(t, tables) for t in TALLIES)


PG_NEW, PG_OLD = ("new_rows", ""), ("old_rows", "-")
PG_FORWARD = [
    f"""
    CREATE FUNCTION crm_history_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {pg_apply([PG_NEW])}
        ELSIF TG_OP = 'DELETE' THEN
            {pg_apply([PG_OLD])}
        ELSIF TG_OP = 'UPDATE' THEN
            {pg_apply([PG_NEW, PG_OLD])}
        ELSE  -- TRUNCATE
            {" ".join(f"DELETE FROM {t['table']};" for t in TALLIES)}
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER crm_history_tally_insert AFTER INSERT ON crm_stagechange"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_history_tally_apply()",
    "CREATE TRIGGER crm_history_tally_delete AFTER DELETE ON crm_stagechange"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_history_tally_apply()",
    "CREATE TRIGGER crm_history_tally_update AFTER UPDATE ON crm_stagechange"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_history_tally_apply()",
    "CREATE TRIGGER crm_history_tally_truncate AFTER TRUNCATE ON crm_stagechange"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_history_tally_apply()",
]
PG_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS crm_history_tally_{event} ON crm_stagechange"
        for event in ("insert", "delete", "update", "truncate")
    ),
    "DROP FUNCTION IF EXISTS crm_history_tally_apply()",
]


def backfill_sql(t: dict) -> str:
    """The tally counted from the history (the same SQL on both databases; on SQLite it reads
    the sorted index whose condition it repeats)."""
    key, sums = ", ".join(t["key"]), ", ".join(t["sums"])
    totals = ", ".join(
        "count(*)" if v == "1" else f"sum({v.format(r='h')})" for v in t["sums"].values()
    )
    return (
        f"INSERT INTO {t['table']} ({key}, {sums})"
        f" SELECT {', '.join(f'h.{k}' for k in t['key'])}, {totals}"
        f" FROM crm_stagechange AS h WHERE {t['counted'].format(r='h')}"
        f" GROUP BY {', '.join(f'h.{k}' for k in t['key'])}"
    )


def add_switch(apps, schema_editor):
    """TallySwitch.history_paused, added in place. Django's AddField of a NOT NULL column
    rebuilds an SQLite table under a new name and renames it back, and SQLite's rename fails
    while 0018's and 0019's triggers name the table (their WHEN reads it)."""
    postgresql = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(
        "ALTER TABLE crm_tallyswitch ADD COLUMN history_paused"
        f" {'boolean' if postgresql else 'bool'} NOT NULL DEFAULT false"
    )
    if postgresql:  # as Django leaves a column (SQLite cannot drop a default; 0 is harmless)
        schema_editor.execute(
            "ALTER TABLE crm_tallyswitch ALTER COLUMN history_paused DROP DEFAULT"
        )


def remove_switch(apps, schema_editor):
    schema_editor.execute("ALTER TABLE crm_tallyswitch DROP COLUMN history_paused")


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = PG_FORWARD if vendor == "postgresql" else SQLITE_FORWARD
    # Triggers first, then the counts of the history already there, in the same transaction.
    for sql in [*statements, *(backfill_sql(t) for t in TALLIES)]:
        schema_editor.execute(sql)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in PG_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("crm", "0020_deal_stage_cover_wider")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_switch, remove_switch)],
            state_operations=[
                migrations.AddField(
                    model_name="tallyswitch",
                    name="history_paused",
                    field=models.BooleanField(default=False),
                )
            ],
        ),
        migrations.CreateModel(
            name="StayTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("to_stage_id", models.BigIntegerField()),
                ("stay_centidays", models.BigIntegerField()),
                ("n", models.BigIntegerField()),
                ("seconds", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("to_stage_id", "stay_centidays"), name="stay_tally_key"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ReachTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("reached_before", models.IntegerField()),
                ("to_stage_id", models.BigIntegerField()),
                ("reach_hours", models.BigIntegerField()),
                ("n", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("reached_before", "to_stage_id", "reach_hours"),
                        name="reach_tally_key",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
