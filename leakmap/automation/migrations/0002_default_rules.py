from django.db import migrations


def install(apps, schema_editor):
    from leakmap.automation.defaults import install_default_rules

    install_default_rules(apps)


class Migration(migrations.Migration):
    dependencies = [("automation", "0001_initial")]
    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
