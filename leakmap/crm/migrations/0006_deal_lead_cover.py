import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def drop_lead_index(apps, schema_editor):
    # Only the single-column index goes (deal_lead_cover starts with the column); an
    # AlterField would copy the whole deal table on SQLite.
    model = apps.get_model("crm", "deal")
    for name in schema_editor._constraint_names(
        model, ["lead_id"], index=True, unique=False, primary_key=False
    ):
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_lead_index(apps, schema_editor):
    model = apps.get_model("crm", "deal")
    schema_editor.execute(
        schema_editor._create_index_sql(model, fields=[model._meta.get_field("lead")])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0005_fewer_duplicate_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="deal",
            index=models.Index(fields=["lead", "stage", "amount"], name="deal_lead_cover"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="deal",
                    name="lead",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="deals",
                        to="crm.lead",
                        verbose_name="lead",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_lead_index, create_lead_index)],
        ),
    ]
