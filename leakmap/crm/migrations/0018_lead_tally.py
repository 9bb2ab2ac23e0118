"""crm_leadtally: lead counts per (owner, source, status, converted, contacted within a day),
kept by triggers on crm_lead.

Triggers rather than service code: leads are written by the services, the bulk importer's
plain INSERTs and UPDATEs, Django's SET_NULL cascades when a user or source goes, and the fact
refreshes — a trigger sees every one of them. SQLite gets row triggers (it has no other kind,
and one writer at a time); PostgreSQL statement triggers over the transition tables, so a bulk
statement costs one grouped upsert, applied in key order (two concurrent writers take the
tally rows' locks in the same order). SQLite's row triggers cost an estimated ~12 µs a row, so an import's
fact refresh that rewrites most leads pauses them through crm_tallyswitch and recounts.

The SQL is written out here rather than imported: a migration must not change when the code
does. "Contacted within a day" is the whole seconds from created_at to first_contacted_at
(crm.models.WholeSecondsBetween, the diagnosis' DaysBetween × 86400) under 86400.
"""

from django.db import migrations, models

KEY = "owner_key, source_key, status, converted, contacted_within_day"
COLUMNS = ("owner_id", "source_id", "status", "created_at", "converted_at", "first_contacted_at")

SQLITE_WITHIN_DAY = (
    "COALESCE(CAST(ROUND((julianday({r}.first_contacted_at) - julianday({r}.created_at))"
    " * 86400) AS INTEGER) < 86400, 0)"
)
SQLITE_ADD = f"""
    INSERT INTO crm_leadtally ({KEY}, n, latest_at)
    VALUES (COALESCE(NEW.owner_id, 0), COALESCE(NEW.source_id, 0), NEW.status,
            NEW.converted_at IS NOT NULL, {SQLITE_WITHIN_DAY.format(r="NEW")}, 1,
            NULLIF(max(COALESCE(NEW.converted_at, ''), COALESCE(NEW.first_contacted_at, '')), ''))
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = n + 1,
        latest_at = NULLIF(max(COALESCE(latest_at, ''), COALESCE(excluded.latest_at, '')), '');
"""
SQLITE_REMOVE = f"""
    UPDATE crm_leadtally SET n = n - 1
    WHERE owner_key = COALESCE(OLD.owner_id, 0) AND source_key = COALESCE(OLD.source_id, 0)
      AND status = OLD.status AND converted = (OLD.converted_at IS NOT NULL)
      AND contacted_within_day = {SQLITE_WITHIN_DAY.format(r="OLD")};
"""
# While an import recounts the tally itself (bulk.tallies_recounted), the triggers stand
# aside; a missing switch row reads as NULL, which is not 1: the triggers count.
SQLITE_COUNTING = "(SELECT leads_paused FROM crm_tallyswitch) IS NOT 1"
SQLITE_FORWARD = [
    f"CREATE TRIGGER crm_lead_tally_insert AFTER INSERT ON crm_lead WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_ADD} END",
    f"CREATE TRIGGER crm_lead_tally_delete AFTER DELETE ON crm_lead WHEN {SQLITE_COUNTING}"
    f" BEGIN {SQLITE_REMOVE} END",
    "CREATE TRIGGER crm_lead_tally_update AFTER UPDATE OF"
    f" {', '.join(COLUMNS)} ON crm_lead"
    # Only rows whose counted columns changed (the bulk import's fact refreshes set many).
    f" WHEN {SQLITE_COUNTING} AND ({' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in COLUMNS)})"
    f" BEGIN {SQLITE_REMOVE} {SQLITE_ADD} END",
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS crm_lead_tally_{event}" for event in ("insert", "delete", "update")
]

PG_KEY_OF = (
    "COALESCE({r}.owner_id, 0), COALESCE({r}.source_id, 0), {r}.status,"
    " {r}.converted_at IS NOT NULL,"
    " COALESCE(CAST(ROUND(EXTRACT(EPOCH FROM ({r}.first_contacted_at - {r}.created_at)))"
    " AS bigint) < 86400, false)"
)
PG_UPSERT = f"""
    INSERT INTO crm_leadtally AS t ({KEY}, n, latest_at)
    SELECT {KEY}, sum(d), max(latest) FROM (
        {{rows}}
    ) AS change (owner_key, source_key, status, converted, contacted_within_day, d, latest)
    GROUP BY {KEY}
    HAVING sum(d) <> 0 OR max(latest) IS NOT NULL
    ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = t.n + EXCLUDED.n,
        latest_at = GREATEST(t.latest_at, EXCLUDED.latest_at);
"""
PG_NEW = (
    f"SELECT {PG_KEY_OF.format(r='r')}, 1, GREATEST(r.converted_at, r.first_contacted_at)"
    " FROM new_rows AS r"
)
PG_OLD = f"SELECT {PG_KEY_OF.format(r='r')}, -1, NULL::timestamptz FROM old_rows AS r"
PG_FORWARD = [
    f"""
    CREATE FUNCTION crm_lead_tally_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            {PG_UPSERT.format(rows=PG_NEW)}
        ELSIF TG_OP = 'DELETE' THEN
            {PG_UPSERT.format(rows=PG_OLD)}
        ELSIF TG_OP = 'UPDATE' THEN
            {PG_UPSERT.format(rows=PG_NEW + " UNION ALL " + PG_OLD)}
        ELSE  -- TRUNCATE
            DELETE FROM crm_leadtally;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER crm_lead_tally_insert AFTER INSERT ON crm_lead"
    " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_lead_tally_apply()",
    "CREATE TRIGGER crm_lead_tally_delete AFTER DELETE ON crm_lead"
    " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crm_lead_tally_apply()",
    "CREATE TRIGGER crm_lead_tally_update AFTER UPDATE ON crm_lead"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_lead_tally_apply()",
    "CREATE TRIGGER crm_lead_tally_truncate AFTER TRUNCATE ON crm_lead"
    " FOR EACH STATEMENT EXECUTE FUNCTION crm_lead_tally_apply()",
]
PG_BACKWARD = [
    *(
        f"DROP TRIGGER IF EXISTS crm_lead_tally_{event} ON crm_lead"
        for event in ("insert", "delete", "update", "truncate")
    ),
    "DROP FUNCTION IF EXISTS crm_lead_tally_apply()",
]


def backfill_sql(vendor: str) -> str:
    if vendor == "postgresql":
        key = PG_KEY_OF.format(r="l")
        latest = "max(GREATEST(l.converted_at, l.first_contacted_at))"
    else:
        key = (
            "COALESCE(l.owner_id, 0), COALESCE(l.source_id, 0), l.status,"
            f" l.converted_at IS NOT NULL, {SQLITE_WITHIN_DAY.format(r='l')}"
        )
        latest = (
            "NULLIF(max(max(COALESCE(l.converted_at, ''), COALESCE(l.first_contacted_at, ''))), '')"
        )
    return (
        f"INSERT INTO crm_leadtally ({KEY}, n, latest_at)"
        f" SELECT {key}, count(*), {latest} FROM crm_lead AS l GROUP BY 1, 2, 3, 4, 5"
    )


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = PG_FORWARD if vendor == "postgresql" else SQLITE_FORWARD
    # Triggers first, then the counts of the leads already there, in the same transaction.
    for sql in [*statements, backfill_sql(vendor)]:
        schema_editor.execute(sql)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in PG_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("crm", "0017_deal_report_cover_by_reach")]

    operations = [
        migrations.CreateModel(
            name="TallySwitch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("leads_paused", models.BooleanField(default=False)),
                ("deals_paused", models.BooleanField(default=False)),
            ],
        ),
        migrations.CreateModel(
            name="LeadTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_key", models.BigIntegerField()),
                ("source_key", models.BigIntegerField()),
                ("status", models.CharField(max_length=12)),
                ("converted", models.BooleanField()),
                ("contacted_within_day", models.BooleanField()),
                ("n", models.BigIntegerField()),
                ("latest_at", models.DateTimeField(null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=(
                            "owner_key",
                            "source_key",
                            "status",
                            "converted",
                            "contacted_within_day",
                        ),
                        name="lead_tally_key",
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
