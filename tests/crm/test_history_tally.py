"""crm_staytally (finished stays per stage and hundredth of a day, with their seconds) and
crm_reachtally (reaches per order before, stage and hour) are kept by database triggers on the
stage history. Whatever writes it — services, imports big and small, fact refreshes, plain
UPDATEs, deletes and cascades — each must equal a count of the history entries themselves."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from leakmap.crm import bulk, services, tallies
from leakmap.crm.models import Deal, ReachTally, StageChange, StayTally, TallySwitch
from tests.analytics.journeys import day, deal
from tests.analytics.test_properties import SETTINGS, random_company
from tests.exchange.helpers import run_import, write
from tests.factories import UserFactory, stage


def tallied() -> tuple[dict, dict]:
    """The tallies' rows but those left empty (n = 0, and for a stay no seconds either: a row
    with seconds and no stays is a wrong count, and shows as one)."""
    stays = {
        (t.to_stage_id, t.stay_centidays): (t.n, t.seconds)
        for t in StayTally.objects.all()
        if (t.n, t.seconds) != (0, 0)
    }
    reaches = {
        (t.reached_before, t.to_stage_id, t.reach_hours): t.n
        for t in ReachTally.objects.exclude(n=0)
    }
    return stays, reaches


def assert_tallies_match():
    """The tables the triggers keep equal the tallies' recounts from the history entries
    (crm.tallies): stays where stay_seconds is known, reaches where reach_seconds is neither
    null nor 0."""
    assert tallies.differences(tallies.STAYS) == []
    assert tallies.differences(tallies.REACHES) == []


def test_the_services_keep_the_tallies(rep):
    j = deal(owner=rep, created=day(0)).enters("proposal", day(2, hours=3))
    qualification, proposal = stage("qualification"), stage("proposal")
    # The qualification stay (2.125 days) ended; proposal's goes on. Proposal was reached
    # 51 hours after creation; qualification at creation (0 s), which is not counted.
    assert tallied() == (
        {(qualification.pk, 212): (1, 2 * 86400 + 3 * 3600)},
        {(qualification.order, proposal.pk, 51): 1},
    )
    assert_tallies_match()
    other = deal(owner=rep, created=day(1)).enters("negotiation", day(3)).won(day(8))
    j.enters("needs_analysis", day(4)).lost(day(6))
    assert_tallies_match()
    # Reopening a won deal ends its won stay.
    other.enters("verbal", day(9, hours=12))
    assert_tallies_match()
    # A new creation time moves every reach of the deal.
    services.deal_update(deal=Deal.objects.get(pk=other.deal.pk), created_at=day(0))
    assert_tallies_match()
    # A reorder changes the orders reached before.
    services.stage_reorder(stage=stage("proposal"), direction="up")
    assert_tallies_match()
    # Deleting an entry's author sets its `by` to null: nothing counted changes.
    mover = UserFactory(username="mover")
    other.deal = services.deal_move(
        deal=other.deal, stage=stage("negotiation"), by=mover, at=day(10)
    )
    mover.delete()
    assert_tallies_match()
    services.deal_delete(deal=Deal.objects.get(pk=j.deal.pk))  # its history goes with it
    assert_tallies_match()
    assert sum(n for n, _s in tallied()[0].values()) == 4  # the other deal's finished stays
    services.deal_delete(deal=Deal.objects.get(pk=other.deal.pk))
    assert tallied() == ({}, {})


def test_plain_updates_and_deletes_keep_the_tallies(rep):
    a = deal(owner=rep, created=day(0)).enters("proposal", day(0, hours=100 / 3600))
    b = deal(owner=rep, created=day(0)).enters("proposal", day(0, hours=200 / 3600))
    deal(owner=rep, created=day(0)).enters("proposal", day(2)).enters("negotiation", day(5))
    into_proposal = StageChange.objects.filter(to_stage=stage("proposal"))
    # Both reached proposal within the first hour: one group of two.
    assert tallied()[1][(stage("qualification").order, stage("proposal").pk, 0)] == 2
    # A reach of 0 s is not counted, though its hour (0) is the group's: leaving the group
    # for it and coming back from it must each count once.
    into_proposal.filter(deal=a.deal).update(reach_seconds=0)
    assert_tallies_match()
    into_proposal.filter(deal=a.deal).update(reach_seconds=50)
    assert_tallies_match()
    into_proposal.filter(deal=a.deal).update(reach_seconds=0)
    Deal.objects.filter(pk=a.deal.pk).delete()  # a plain cascade, not the service
    assert_tallies_match()
    assert tallied()[1][(stage("qualification").order, stage("proposal").pk, 0)] == 1
    # A negative reach is counted (in hour 0 too).
    into_proposal.filter(deal=b.deal).update(reach_seconds=-30)
    assert_tallies_match()
    # Stays: a new end, a new start, another stage; and an update that changes nothing.
    StageChange.objects.filter(left_at__isnull=False).update(left_at=day(7))
    assert_tallies_match()
    StageChange.objects.filter(to_stage=stage("proposal")).update(at=day(1), reached_before=3)
    assert_tallies_match()
    into_proposal.update(to_stage=stage("verbal"))
    StageChange.objects.update(left_at=None)
    assert_tallies_match()
    assert tallied()[0] == {}
    StageChange.objects.filter(deal=b.deal).delete()
    assert_tallies_match()


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_random_histories_keep_the_tallies(db, seed):
    with random_company(seed, max_deals=25) as rnd:
        assert_tallies_match()
        # The fact refreshes rewrite every entry with (mostly) the same values.
        services.stage_entries_refresh_facts()
        services.deals_refresh_facts()
        assert_tallies_match()
        doomed = [pk for pk in Deal.objects.values_list("pk", flat=True) if rnd.random() < 0.5]
        Deal.objects.filter(pk__in=doomed).delete()
        assert_tallies_match()


def test_the_migrations_backfill_counts_the_history(rep):
    """0021 counts the history already there with the same SQL on both databases."""
    migration = importlib.import_module("leakmap.crm.migrations.0021_history_tally")
    deal(owner=rep, created=day(0)).enters("proposal", day(2)).enters("qualification", day(3))
    deal(owner=rep, created=day(1)).enters("negotiation", day(1, hours=5)).won(day(4))
    expected = tallied()
    StayTally.objects.all().delete()
    ReachTally.objects.all().delete()
    with connection.cursor() as cursor:
        for tally in migration.TALLIES:
            cursor.execute(migration.backfill_sql(tally))
    assert tallied() == expected
    assert expected[0] and expected[1]
    assert_tallies_match()


def import_deals(tmp_path, name: str = "deals.csv", created: str = "2026-01-06") -> None:
    """D1 won, D2 in negotiation, D3 in qualification (its history: created there)."""
    run_import(
        "deals",
        write(
            tmp_path / name,
            "external_id,name,amount,stage,owner,created_at,expected_close_date,closed_at\n"
            f"D1,单子一,100.5,won,alice,{created},2026-03-01,2026-01-20\n"
            f"D2,单子二,2000,negotiation,alice,{created},2026-03-01,\n"
            f"D3,单子三,300,qualification,alice,{created},2026-03-01,\n",
        ),
    )


def import_history(tmp_path, name: str = "history.csv", proposal: str = "2026-01-08") -> None:
    run_import(
        "stage-history",
        write(
            tmp_path / name,
            "deal_external_id,stage,entered_at\n"
            f"D1,qualification,2026-01-06\nD1,proposal,{proposal}\nD1,won,2026-01-20\n"
            "D2,qualification,2026-01-06T10:00:00.250\nD2,negotiation,2026-01-09T12:30\n"
            "D3,qualification,2026-01-06\n",
        ),
    )


@pytest.mark.parametrize("recount", [False, True], ids=["triggers", "recounted"])
def test_imports_keep_the_tallies_with_the_triggers_or_a_recount(
    tmp_path, rep, monkeypatch, recount
):
    """A stage-history import of more entries than TALLY_RECOUNT_FROM pauses SQLite's
    triggers and recounts; a smaller one leaves them counting. Both must end equal to the
    history, with the triggers counting again afterwards."""
    monkeypatch.setattr(
        "leakmap.exchange.importers.base.TALLY_RECOUNT_FROM", 0 if recount else 10**9
    )
    paused_while_writing = []
    replace = bulk.stage_history_replace

    def watched(*args, **kwargs):
        paused_while_writing.append(TallySwitch.objects.filter(history_paused=True).exists())
        return replace(*args, **kwargs)

    monkeypatch.setattr(bulk, "stage_history_replace", watched)
    import_deals(tmp_path)
    assert_tallies_match()
    import_history(tmp_path)
    assert_tallies_match()
    assert tallied()[0] and tallied()[1]
    # Imported again with another time: every deal's history is replaced.
    import_history(tmp_path, "history2.csv", proposal="2026-01-10T08:00")
    assert_tallies_match()
    assert paused_while_writing == [recount and connection.vendor == "sqlite"] * 2
    assert not TallySwitch.objects.filter(history_paused=True).exists()
    # A re-import of the deals with another creation time moves every reach.
    import_deals(tmp_path, "deals2.csv", created="2026-01-05T20:00")
    assert_tallies_match()
    # The triggers count again after the imports.
    services.deal_move(deal=Deal.objects.get(external_id="D3"), stage=stage("verbal"), at=day(9))
    services.deal_delete(deal=Deal.objects.get(external_id="D2"))
    assert_tallies_match()


def test_a_failed_import_rolls_the_tallies_back(tmp_path, rep, monkeypatch):
    """The history is written with the triggers paused, then the import fails: its writes,
    the pause and the tallies all roll back, and the triggers count on."""
    monkeypatch.setattr("leakmap.exchange.importers.base.TALLY_RECOUNT_FROM", 0)
    import_deals(tmp_path)
    import_history(tmp_path)
    before = tallied()
    replace = bulk.stage_history_replace

    def broken(*args, **kwargs):
        replace(*args, **kwargs)
        paused = TallySwitch.objects.filter(history_paused=True).exists()
        assert paused == (connection.vendor == "sqlite")
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "stage_history_replace", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        import_history(tmp_path, "history2.csv", proposal="2026-01-12")
    assert tallied() == before
    assert_tallies_match()
    assert not TallySwitch.objects.filter(history_paused=True).exists()
    services.deal_move(deal=Deal.objects.get(external_id="D2"), stage=stage("verbal"), at=day(9))
    assert_tallies_match()
    assert tallied() != before


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize("table", ["crm_stagechange", "crm_deal"])
def test_truncate_empties_the_tallies(rep, table):
    deal(owner=rep, created=day(0)).enters("proposal", day(2)).won(day(3))
    assert tallied()[0] and tallied()[1]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {table} CASCADE")  # crm_deal's takes its history with it
    assert tallied() == ({}, {})
