"""Migration 0023 gives the accounts and contacts that imports left unassigned the owner of
their oldest deal; run here on real rows, on both databases."""

from __future__ import annotations

import importlib

from django.db import connection

from leakmap.crm.models import Account, Contact
from tests.factories import T0, days, make_deal

backfill = importlib.import_module("leakmap.crm.migrations.0023_contact_order_and_owners")


def run(table: str, column: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(backfill.OWNER_OF_OLDEST_DEAL.format(table=table, column=column))


def test_unassigned_accounts_and_contacts_take_their_oldest_deals_owner(rep, teammate, outsider):
    account = Account.objects.create(name="导入的客户", created_at=T0)
    contact = Contact.objects.create(account=account, name="导入的联系人", created_at=T0)
    make_deal(owner=rep, account=account, contact=contact, created_at=T0 + days(2))
    make_deal(owner=teammate, account=account, contact=contact, created_at=T0 + days(1))
    owned = Account.objects.create(name="有主的客户", owner=outsider, created_at=T0)
    make_deal(owner=rep, account=owned)
    dealless = Contact.objects.create(name="没有商机", created_at=T0)

    run("crm_account", "account_id")
    run("crm_contact", "contact_id")

    account.refresh_from_db(), contact.refresh_from_db(), owned.refresh_from_db()
    dealless.refresh_from_db()
    assert account.owner == teammate and contact.owner == teammate  # the oldest deal's
    assert owned.owner == outsider  # an owner already set stays
    assert dealless.owner is None  # nothing to take it from
