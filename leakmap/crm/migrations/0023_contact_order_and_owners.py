"""The contact list's order as an index, and an owner for the accounts and contacts that
imports created without one.

Imports made accounts and contacts without an owner, while a conversion gives them the rep's.
Unassigned records are every manager's (so that they can hand them out), so each manager saw
every team's imported contacts — and the list sorted all of them. They now take the owner of
their oldest deal, as a conversion would have given them; records without deals stay
unassigned.
"""

from django.conf import settings
from django.db import migrations, models

OWNER_OF_OLDEST_DEAL = """
UPDATE {table} SET owner_id = (
    SELECT d.owner_id FROM crm_deal d WHERE d.{column} = {table}.id
    ORDER BY d.created_at, d.id LIMIT 1
)
WHERE owner_id IS NULL AND EXISTS (SELECT 1 FROM crm_deal d WHERE d.{column} = {table}.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0022_lost_tally"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="contact",
            index=models.Index(fields=["name", "id"], name="contact_name_order"),
        ),
        migrations.RunSQL(
            OWNER_OF_OLDEST_DEAL.format(table="crm_account", column="account_id"),
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            OWNER_OF_OLDEST_DEAL.format(table="crm_contact", column="contact_id"),
            migrations.RunSQL.noop,
        ),
    ]
