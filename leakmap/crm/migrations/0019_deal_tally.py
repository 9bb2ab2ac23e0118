"""crm_dealtally: deals per (owner, stage, reached order, lead's source, has a lead) with their
amounts in cents, follow-ups and seconds to close, kept by triggers on crm_deal — the same
design as 0018's lead tally (read its docstring for why triggers, and why row triggers on
SQLite and statement triggers on PostgreSQL). The SQL is written out here on purpose.
"""

from django.db import migrations, models

KEY = "owner_key, stage_id, reached_order, lead_source_key, has_lead"
SUMS = "n, amount_cents, follow_ups, cycle_seconds, cycle_n"
# The columns the key and the sums read (cycle_seconds is generated from the two times).
COLUMNS = (
    "owner_id",
    "stage_id",
    "reached_order",
    "lead_source_id",
    "lead_id",
    "amount",
    "follow_up_count",
    "closed_at",
    "created_at",
)


def sqlite_values(r: str) -> str:
    return (
        f"COALESCE({r}.owner_id, 0), {r}.stage_id, {r}.reached_order,"
        f" COALESCE({r}.lead_source_id, 0), {r}.lead_id IS NOT NULL"
    )


def sqlite_cents(r: str) -> str:
    return f"CAST(ROUND({r}.amount * 100) AS INTEGER)"


SQLITE_ADD = f"""
    INSERT INTO crm_dealtally ({KEY}, {SUMS})
    VALUES ({sqlite_values("NEW")}, 1, {sqlite_cents("NEW")}, NEW.follow_up_count,
            COALESCE(NEW.cycle_seconds, 0), NEW.cycle_seconds IS NOT NULL)
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = n + 1,
        amount_cents = amount_cents + excluded.amount_cents,
        follow_ups = follow_ups + excluded.follow_ups,
        cycle_seconds = cycle_seconds + excluded.cycle_seconds,
        cycle_n = cycle_n + excluded.cycle_n;
"""
SQLITE_REMOVE = f"""
    UPDATE crm_dealtally SET
        n = n - 1,
        amount_cents = amount_cents - {sqlite_cents("OLD")},
        follow_ups = follow_ups - OLD.follow_up_count,
        cycle_seconds = cycle_seconds - COALESCE(OLD.cycle_seconds, 0),
        cycle_n = cycle_n - (OLD.cycle_seconds IS NOT NULL)
    WHERE owner_key = COALESCE(OLD.owner_id, 0) AND stage_id = OLD.stage_id
      AND reached_order = OLD.reached_order AND lead_source_key = COALESCE(OLD.lead_source_id, 0)
      AND has_lead = (OLD.lead_id IS NOT NULL);
"""
# As 0018: the triggers stand aside while an import recounts the tally itself.
SQLITE_COUNTING = "(SELECT deals_paused FROM crm_tallyswitch) IS NOT 1"
SQLITE_FORWARD = [
    f"CREATE TRIGGER crm_deal_tally_insert AFTER INSERT ON crm_deal WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_ADD} END",
    f"CREATE TRIGGER crm_deal_tally_delete AFTER DELETE ON crm_deal WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_REMOVE} END",
    f"CREATE TRIGGER crm_deal_tally_update AFTER UPDATE OF {', '.join(COLUMNS)} ON crm_deal"
    # Only rows whose counted columns changed (the bulk import's fact refreshes set many).
    f" WHEN {SQLITE_COUNTING} AND ({' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in COLUMNS)})"
    f" BEGIN {SQLITE_REMOVE} {SQLITE_ADD} END",
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS crm_deal_tally_{event}" for event in ("insert", "delete", "update")
]


def pg_rows(table: str, sign: str) -> str:
    return (
        "SELECT COALESCE(r.owner_id, 0), r.stage_id, r.reached_order,"
        " COALESCE(r.lead_source_id, 0), r.lead_id IS NOT NULL,"
        f" {sign}1, {sign}CAST(r.amount * 100 AS bigint), {sign}r.follow_up_count,"
        f" {sign}COALESCE(r.cycle_seconds, 0), {sign}(r.cycle_seconds IS NOT NULL)::int"
        f" FROM {table} AS r"
    )


PG_UPSERT = f"""
    INSERT INTO crm_dealtally AS t ({KEY}, {SUMS})
    SELECT {KEY}, sum(n), sum(amount_cents), sum(follow_ups), sum(cycle_seconds), sum(cycle_n)
    FROM ({{rows}}) AS change ({KEY}, {SUMS})
    GROUP BY {KEY}
    HAVING sum(n) <> 0 OR sum(amount_cents) <> 0 OR sum(follow_ups) <> 0
        OR sum(cycle_seconds) <> 0 OR sum(cycle_n) <> 0
    ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = t.n + EXCLUDED.n,
        amount_cents = t.amount_cents + EXCLUDED.amount_cents,
        follow_ups = t.follow_ups + EXCLUDED.follow_ups,
        cycle_seconds = t.cycle_seconds + EXCLUDED.cycle_seconds,
        cycle_n = t.cycle_n + EXCLUDED.cycle_n;
"""
PG_NEW, PG_OLD = pg_rows("new_rows", ""), pg_rows("old_rows", "-")
PG_FORWARD = [
    f"""
    CREATE FUNCTION crm_deal_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {PG_UPSERT.format(rows=PG_NEW)}
        ELSIF TG_OP = 'DELETE' THEN
            {PG_UPSERT.format(rows=PG_OLD)}
        ELSIF TG_OP = 'UPDATE' THEN
            {PG_UPSERT.format(rows=PG_NEW + " UNION ALL " + PG_OLD)}
        ELSE  -- TRUNCATE
            DELETE FROM crm_dealtally;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER crm_deal_tally_insert AFTER INSERT ON crm_deal"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_deal_tally_apply()",
    "CREATE TRIGGER crm_deal_tally_delete AFTER DELETE ON crm_deal"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_deal_tally_apply()",
    "CREATE TRIGGER crm_deal_tally_update AFTER UPDATE ON crm_deal"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_deal_tally_apply()",
    "CREATE TRIGGER crm_deal_tally_truncate AFTER TRUNCATE ON crm_deal"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_deal_tally_apply()",
]
PG_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS crm_deal_tally_{event} ON crm_deal"
        for event in ("insert", "delete", "update", "truncate")
    ),
    "DROP FUNCTION IF EXISTS crm_deal_tally_apply()",
]


def backfill_sql(vendor: str) -> str:
    if vendor == "postgresql":
        key = (
            "COALESCE(d.owner_id, 0), d.stage_id, d.reached_order, COALESCE(d.lead_source_id, 0),"
            " d.lead_id IS NOT NULL"
        )
        cents = "CAST(d.amount * 100 AS bigint)"
    else:
        key, cents = sqlite_values("d"), sqlite_cents("d")
    return (
        f"INSERT INTO crm_dealtally ({KEY}, {SUMS})"
        f" SELECT {key}, count(*), sum({cents}), sum(d.follow_up_count),"
        " COALESCE(sum(d.cycle_seconds), 0), count(d.cycle_seconds)"
        " FROM crm_deal AS d GROUP BY 1, 2, 3, 4, 5"
    )


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = PG_FORWARD if vendor == "postgresql" else SQLITE_FORWARD
    for sql in [*statements, backfill_sql(vendor)]:
        schema_editor.execute(sql)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in PG_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("crm", "0018_lead_tally")]

    operations = [
        migrations.CreateModel(
            name="DealTally",
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
                ("lead_source_key", models.BigIntegerField()),
                ("has_lead", models.BooleanField()),
                ("n", models.BigIntegerField()),
                ("amount_cents", models.BigIntegerField()),
                ("follow_ups", models.BigIntegerField()),
                ("cycle_seconds", models.BigIntegerField()),
                ("cycle_n", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=(
                            "owner_key",
                            "stage_id",
                            "reached_order",
                            "lead_source_key",
                            "has_lead",
                        ),
                        name="deal_tally_key",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
