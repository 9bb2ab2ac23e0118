"""crm_dealtally, the deals per (owner, stage, reached order, lead's source, has a lead) with
their sums, is kept by database triggers. Whatever writes the deals — services, imports, fact
refreshes, bulk UPDATEs, deletes — it must equal a count of the deals themselves."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from leakmap.crm import services, tallies
from leakmap.crm.models import Deal, DealTally, Lead, LostTally, Stage
from tests.analytics.test_properties import SETTINGS, random_company
from tests.exchange.helpers import run_import, write
from tests.factories import (
    T0,
    LeadFactory,
    SourceFactory,
    UserFactory,
    days,
    lost_reason,
    make_deal,
)


def tallied() -> dict:
    return {
        (t.owner_key, t.stage_id, t.reached_order, t.lead_source_key, t.has_lead): (
            t.n,
            t.amount_cents,
            t.follow_ups,
            t.cycle_seconds,
            t.cycle_n,
        )
        for t in DealTally.objects.all()
        if (t.n, t.amount_cents, t.follow_ups, t.cycle_seconds, t.cycle_n) != (0, 0, 0, 0, 0)
    }


def assert_tally_matches():
    """The table the triggers keep equals the tally's recount from the deals (crm.tallies)."""
    assert tallies.differences(tallies.DEALS) == []


def test_the_services_keep_the_tally(rep):
    bob = UserFactory(username="bob")
    web = SourceFactory(name="官网")
    lead = LeadFactory(owner=rep, source=web, created_at=T0)
    converted = services.lead_convert(
        lead=lead,
        data=services.ConversionInput(
            amount=Decimal("1234.56"), expected_close_date=dt.date(2026, 3, 1)
        ),
        by=rep,
        at=T0 + days(1),
    )
    plain = make_deal(owner=rep, amount=Decimal("99.99"))
    assert_tally_matches()
    services.deal_move(deal=converted, stage=Stage.objects.get(key="proposal"), at=T0 + days(2))
    services.activity_log(
        services.ActivityInput(owner=rep, kind="call", deal=plain, done_at=T0 + days(3))
    )
    services.deal_update(deal=Deal.objects.get(pk=plain.pk), owner=bob, amount=Decimal("100.10"))
    assert_tally_matches()
    services.deal_close_won(deal=Deal.objects.get(pk=converted.pk), at=T0 + days(9))
    services.deal_close_lost(
        deal=Deal.objects.get(pk=plain.pk), lost_reason=lost_reason(), at=T0 + days(10)
    )
    assert_tally_matches()
    services.lead_delete(lead=Lead.objects.get(pk=lead.pk))  # the deal loses its lead
    assert_tally_matches()
    services.deal_delete(deal=Deal.objects.get(pk=plain.pk))
    assert_tally_matches()
    assert sum(v[0] for v in tallied().values()) == 1


def import_deals(tmp_path) -> None:
    """D1 from lead L1, won; D2 without a lead, in negotiation."""
    run_import(
        "deals",
        write(
            tmp_path / "deals.csv",
            "external_id,lead_external_id,name,amount,stage,owner,created_at,"
            "expected_close_date,closed_at\n"
            "D1,L1,单子一,100.5,won,alice,2026-01-06,2026-03-01,2026-01-20\n"
            "D2,,单子二,2000,negotiation,alice,2026-01-06,2026-03-01,\n",
        ),
    )


def import_history(tmp_path) -> None:
    run_import(
        "stage-history",
        write(
            tmp_path / "history.csv",
            "deal_external_id,stage,entered_at\n"
            "D1,qualification,2026-01-06\nD1,proposal,2026-01-08\nD1,won,2026-01-20\n"
            "D2,qualification,2026-01-06\nD2,negotiation,2026-01-09\n",
        ),
    )


def test_imports_and_refreshes_keep_the_tally(tmp_path, rep):
    run_import(
        "leads",
        write(
            tmp_path / "leads.csv",
            "external_id,name,owner,source,created_at\nL1,张三,alice,官网,2026-01-05\n",
        ),
    )
    import_deals(tmp_path)
    assert_tally_matches()
    import_history(tmp_path)
    assert_tally_matches()
    services.deals_refresh_facts()
    Deal.objects.filter(external_id="D2").update(amount=Decimal("7.01"), owner=UserFactory())
    assert_tally_matches()


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_random_histories_keep_both_deal_tallies(db, seed):
    from tests.crm.test_lost_tally import assert_tally_matches as assert_lost_tally_matches

    with random_company(seed, max_deals=25):
        assert_tally_matches()
        assert_lost_tally_matches()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_truncate_empties_both_deal_tallies(rep):
    make_deal(owner=rep)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE crm_deal CASCADE")
    assert not tallied()
    assert not LostTally.objects.exists()


@pytest.mark.parametrize("recount", [False, True], ids=["triggers", "recounted"])
def test_the_import_refreshes_keep_both_tallies_with_the_triggers_or_a_recount(
    tmp_path, rep, monkeypatch, recount
):
    """Big imports recount the tallies (SQLite's triggers paused in the transaction) instead
    of firing a trigger per rewritten row; small ones keep the triggers. Both must end equal
    to the records, with the triggers counting again afterwards."""
    from leakmap.crm.models import TallySwitch
    from tests.crm.test_lead_tally import assert_tally_matches as assert_lead_tally_matches

    monkeypatch.setattr(
        "leakmap.exchange.importers.base.TALLY_RECOUNT_FROM", 0 if recount else 10**9
    )
    run_import(
        "leads",
        write(
            tmp_path / "leads.csv",
            "external_id,name,owner,source,created_at\n"
            "L1,张三,alice,官网,2026-01-05T09:00\nL2,李四,alice,展会,2026-01-05T09:00\n",
        ),
    )
    import_deals(tmp_path)
    import_history(tmp_path)
    run_import(
        "activities",
        write(
            tmp_path / "activities.csv",
            "external_id,kind,owner,lead_external_id,deal_external_id,done_at\n"
            "A1,call,alice,L1,,2026-01-05T12:00\n"  # L1 contacted within the day
            "A2,call,alice,L2,,2026-01-07T12:00\n"  # L2 after it
            "A3,meeting,alice,,D2,2026-01-10T10:00\n",
        ),
    )
    assert_tally_matches()
    assert_lead_tally_matches()
    assert not TallySwitch.objects.filter(leads_paused=True).exists()
    assert not TallySwitch.objects.filter(deals_paused=True).exists()
    # The triggers count again after the import.
    services.lead_delete(lead=Lead.objects.get(external_id="L2"))
    services.deal_delete(deal=Deal.objects.get(external_id="D2"))
    assert_tally_matches()
    assert_lead_tally_matches()


def test_a_failed_import_leaves_the_triggers_counting(tmp_path, rep, monkeypatch):
    from leakmap.crm import bulk
    from leakmap.crm.models import TallySwitch

    monkeypatch.setattr("leakmap.exchange.importers.base.TALLY_RECOUNT_FROM", 0)
    make_deal(owner=rep, name="D0", external_id="D0")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "stage_history_replace", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(
            "stage-history",
            write(
                tmp_path / "h.csv",
                "deal_external_id,stage,entered_at\nD0,qualification,2026-01-05T17:00\n",
            ),
        )
    assert not TallySwitch.objects.filter(deals_paused=True).exists()
    make_deal(owner=rep)
    assert_tally_matches()
