import django.db.models.expressions
from django.conf import settings
from django.db import migrations, models

from leakmap.crm.models import WholeSecondsBetween


def backfill_reach_seconds(apps, schema_editor):
    """Existing history gets what services.stage_entries_refresh_facts now keeps: for an entry
    that takes its deal to a non-lost order above reached_before, the whole seconds since the
    deal was created (written here so the migration does not depend on later service code)."""
    connection = schema_editor.connection
    qn = connection.ops.quote_name
    since = WholeSecondsBetween.sql_text(connection.vendor, "h.at", "d.created_at")
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE crm_stagechange SET reach_seconds = w.since
            FROM (
                SELECT h.id AS id, {since} AS since
                FROM crm_stagechange h
                JOIN crm_stage t ON t.id = h.to_stage_id
                JOIN crm_deal d ON d.id = h.deal_id
                WHERE t.kind <> 'lost' AND t.{qn("order")} > h.reached_before
            ) w
            WHERE crm_stagechange.id = w.id
            """
        )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0010_deal_closed_at_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="stagechange",
            name="reach_seconds",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill_reach_seconds, migrations.RunPython.noop),
        migrations.AddField(
            model_name="stagechange",
            name="reach_hours",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.expressions.CombinedExpression(
                    models.F("reach_seconds"), "/", models.Value(3600)
                ),
                output_field=models.BigIntegerField(null=True),
            ),
        ),
        migrations.AddIndex(
            model_name="stagechange",
            index=models.Index(
                condition=models.Q(("reach_seconds__gt", 0), ("reach_seconds__lt", 0), _connector="OR"),
                fields=["reached_before", "to_stage", "reach_hours", "reach_seconds"],
                name="stage_reach_sorted",
            ),
        ),
    ]
