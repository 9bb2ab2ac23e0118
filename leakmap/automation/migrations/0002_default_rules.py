from django.db import migrations


def install(apps, schema_editor):
    from leakmap.automation.defaults import DEFAULT_RULES

    Rule = apps.get_model("automation", "Rule")
    for spec in DEFAULT_RULES:
        spec = dict(spec)
        Rule.objects.get_or_create(key=spec.pop("key"), defaults=spec)


class Migration(migrations.Migration):
    dependencies = [("automation", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
