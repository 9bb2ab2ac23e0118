from __future__ import annotations

from django.db import connection

from leakmap.accounts.selectors import visible_users
from leakmap.crm.selectors import visible_deals, visible_leads
from tests.factories import LeadFactory, make_deal


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


def test_a_manager_sees_unassigned_leads_and_reaches_the_teams_deals_by_the_owner_index(
    rep, outsider, manager
):
    LeadFactory(owner=None, name="公海线索")
    LeadFactory(owner=outsider, name="别组线索")
    assert list(visible_leads(manager).values_list("name", flat=True)) == ["公海线索"]
    # Every deal has an owner: no "or unassigned" branch, which made SQLite scan every deal.
    deals = visible_deals(manager).filter(stage__kind="open").order_by().values("stage_id")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            sql, params = deals.query.sql_with_params()
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " / ".join(row[-1] for row in cursor.fetchall())
        assert "crm_deal USING" in plan and "(owner_id=?)" in plan, plan
    assert "IS NULL" not in str(deals.query)
