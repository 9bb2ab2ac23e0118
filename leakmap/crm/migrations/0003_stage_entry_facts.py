from django.db import migrations, models


def fill_entry_facts(apps, schema_editor):
    """Existing history gets the facts the services keep from now on: left_at = the deal's next
    entry's time, reached_before = the highest non-lost order among its earlier entries."""
    qn = schema_editor.connection.ops.quote_name
    window = f"PARTITION BY h.deal_id ORDER BY h.{qn('at')}, h.id"
    schema_editor.execute(
        f"""
        UPDATE crm_stagechange SET left_at = w.nxt, reached_before = w.rb
        FROM (
            SELECT h.id AS id, LEAD(h.{qn("at")}) OVER ({window}) AS nxt,
                   COALESCE(MAX(CASE WHEN t.kind <> 'lost' THEN t.{qn("order")} END) OVER (
                       {window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS rb
            FROM crm_stagechange h JOIN crm_stage t ON t.id = h.to_stage_id
        ) w
        WHERE crm_stagechange.id = w.id
        """
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_default_pipeline"),
    ]

    operations = [
        migrations.AddField(
            model_name="stagechange",
            name="left_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="left at"
            ),
        ),
        migrations.AddField(
            model_name="stagechange",
            name="reached_before",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(fill_entry_facts, migrations.RunPython.noop),
    ]
