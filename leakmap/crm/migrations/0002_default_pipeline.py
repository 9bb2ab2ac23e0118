from django.db import migrations


def install(apps, schema_editor):
    from leakmap.crm.defaults import DEFAULT_LOST_REASONS, DEFAULT_PIPELINE_NAME, DEFAULT_STAGES

    Pipeline = apps.get_model("crm", "Pipeline")
    Stage = apps.get_model("crm", "Stage")
    LostReason = apps.get_model("crm", "LostReason")
    pipeline, _ = Pipeline.objects.get_or_create(
        name=DEFAULT_PIPELINE_NAME, defaults={"is_default": True}
    )
    for order, (key, zh, en, prob, kind, sla, crit_zh, crit_en, required) in enumerate(
        DEFAULT_STAGES, start=1
    ):
        Stage.objects.get_or_create(
            pipeline=pipeline, key=key,
            defaults=dict(
                label_zh=zh, label_en=en, order=order, probability=prob, kind=kind,
                sla_days=sla, entry_criteria_zh=crit_zh, entry_criteria_en=crit_en,
                required_fields=required,
            ),
        )
    for name, needs_competitor in DEFAULT_LOST_REASONS:
        LostReason.objects.get_or_create(name=name, defaults={"requires_competitor": needs_competitor})


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
