import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def backfill_lead_source(apps, schema_editor):
    """Every deal with a lead gets its lead's source, as services.deals_refresh_lead_source
    keeps it from now on."""
    Deal = apps.get_model("crm", "Deal")
    Lead = apps.get_model("crm", "Lead")
    Deal.objects.filter(lead__isnull=False).update(
        lead_source_id=models.Subquery(
            Lead.objects.filter(pk=models.OuterRef("lead_id")).values("source_id")[:1]
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0013_deal_cycle_sorted"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="deal",
            name="lead_source",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="crm.source",
            ),
        ),
        migrations.RunPython(backfill_lead_source, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="deal",
            index=models.Index(
                fields=["lead_source", "stage", "amount", "lead"], name="deal_lead_source_cover"
            ),
        ),
    ]
