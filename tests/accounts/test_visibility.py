from __future__ import annotations

from django.db import connection

from leakmap.accounts.selectors import team_ids, visible_users
from leakmap.analytics.filters import ReportFilters, resolve
from leakmap.crm.models import Account, Contact
from leakmap.crm.selectors import (
    visible_accounts,
    visible_contacts,
    visible_deals,
    visible_leads,
)
from tests.factories import T0, LeadFactory, make_deal


def test_it_shows_a_rep_only_their_own_records(rep, teammate, outsider):
    mine = make_deal(owner=rep)
    make_deal(owner=teammate)
    make_deal(owner=outsider)
    LeadFactory(owner=rep)
    LeadFactory(owner=outsider)

    assert list(visible_deals(rep)) == [mine]
    assert set(visible_leads(rep).values_list("owner__username", flat=True)) == {"alice"}


def test_it_shows_a_manager_the_team_but_not_outsiders(rep, teammate, outsider, manager):
    make_deal(owner=rep)
    make_deal(owner=teammate)
    make_deal(owner=outsider)
    owners = set(visible_deals(manager).values_list("owner__username", flat=True))
    assert owners == {"alice", "bob"}
    assert set(visible_users(manager).values_list("username", flat=True)) == {
        "alice",
        "bob",
        "manager",
    }


def test_it_shows_an_admin_everything(rep, outsider, admin_user):
    make_deal(owner=rep)
    make_deal(owner=outsider)
    assert visible_deals(admin_user).count() == 2


def test_an_inactive_user_sees_nothing(rep):
    make_deal(owner=rep)
    rep.is_active = False
    rep.save()
    assert visible_deals(rep).count() == 0


def plan_of(queryset) -> str:
    with connection.cursor() as cursor:
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " / ".join(row[-1] for row in cursor.fetchall())


def test_accounts_and_contacts_are_seen_through_their_owner_or_a_visible_deal(
    rep, teammate, outsider, manager
):
    def account_and_contact(name, owner):
        account = Account.objects.create(name=name, owner=owner, created_at=T0)
        return account, Contact.objects.create(
            account=account, name=name, owner=owner, created_at=T0
        )

    # Owned by an outsider, but with a deal of the rep's: the rep sees them through it.
    account, contact = account_and_contact("合作客户", outsider)
    mine = make_deal(owner=rep, account=account, contact=contact)
    theirs = make_deal(owner=outsider, account=account_and_contact("别组客户", outsider)[0])
    lonely, _ = account_and_contact("没有商机的客户", outsider)
    loose = Contact.objects.create(name="公海联系人", owner=None, created_at=T0)

    assert list(visible_accounts(rep)) == [mine.account]
    assert list(visible_contacts(rep)) == [mine.contact]
    # A manager: the team's deals' accounts, and unassigned records to hand out; not an
    # outsider's account just because it has no deal.
    assert set(visible_accounts(manager)) == {mine.account}
    assert set(visible_contacts(manager)) == {mine.contact, loose}
    assert lonely not in visible_accounts(manager) and theirs.account not in visible_accounts(
        manager
    )
    if connection.vendor == "sqlite":
        # The deals are reached by their owner index, not joined and scanned.
        for rows in (visible_accounts(rep), visible_contacts(rep), visible_contacts(manager)):
            plan = plan_of(rows.order_by("name", "id")[:26])
            assert "crm_deal" in plan and "SCAN U" not in plan and "SCAN V" not in plan, plan


def test_a_manager_sees_unassigned_leads_and_reaches_the_teams_deals_by_the_owner_index(
    rep, outsider, manager
):
    LeadFactory(owner=None, name="公海线索")
    LeadFactory(owner=outsider, name="别组线索")
    assert list(visible_leads(manager).values_list("name", flat=True)) == ["公海线索"]
    # Every deal has an owner: no "or unassigned" branch, which made SQLite scan every deal.
    deals = visible_deals(manager).filter(stage__kind="open").order_by().values("stage_id")
    if connection.vendor == "sqlite":
        plan = plan_of(deals)
        assert "crm_deal USING" in plan and "(owner_id=?)" in plan, plan
    assert "IS NULL" not in str(deals.query)


def test_a_managers_filter_names_the_team_so_postgresql_can_use_the_owner_index(
    rep, teammate, outsider, manager
):
    # `owner IN (SELECT … users …) OR owner IS NULL` made PostgreSQL scan every lead with a
    # hashed subplan; a list of ids lets it OR two index scans.
    sql = str(visible_leads(manager).query)
    assert "SELECT U0" not in sql and "IS NULL" in sql
    assert set(team_ids(manager)) == {rep.pk, teammate.pk, manager.pk}
    scope = resolve(ReportFilters(viewer=manager))
    assert set(scope.viewer_team) == {rep.pk, teammate.pk, manager.pk}
    assert resolve(ReportFilters(viewer=rep)).viewer_team is None
