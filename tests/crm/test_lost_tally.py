"""crm_losttally, the deals per (owner, stage, reached order, lost reason) with how many carry
lost notes and how many a competitor, is kept by database triggers. Whatever writes the deals
— services, imports with or without the recount, bulk UPDATEs, deletes — it must equal a
count of the deals themselves (generated histories and TRUNCATE: tests/crm/test_deal_tally.py,
which checks both deal tallies)."""

from __future__ import annotations

import pytest

from leakmap.crm import services, tallies
from leakmap.crm.models import Deal, LostTally, Stage
from tests.crm.test_deal_tally import import_deals, import_history
from tests.exchange.helpers import run_import, write
from tests.factories import T0, CompetitorFactory, UserFactory, days, lost_reason, make_deal


def tallied() -> dict:
    return {
        (t.owner_key, t.stage_id, t.reached_order, t.lost_reason_key): (
            t.n,
            t.with_notes,
            t.with_competitor,
        )
        for t in LostTally.objects.all()
        if (t.n, t.with_notes, t.with_competitor) != (0, 0, 0)
    }


def assert_tally_matches():
    """The table the triggers keep equals the tally's recount from the deals (crm.tallies)."""
    assert tallies.differences(tallies.LOST) == []


def test_the_services_keep_the_tally(rep):
    bob = UserFactory(username="bob")
    rival = CompetitorFactory(name="某竞品")
    first = make_deal(owner=rep)
    second = make_deal(owner=rep)
    services.deal_move(deal=first, stage=Stage.objects.get(key="negotiation"), at=T0 + days(2))
    services.deal_close_lost(
        deal=Deal.objects.get(pk=first.pk),
        lost_reason=lost_reason("被竞争对手拿下"),
        competitor=rival,
        notes="对方便宜三成",
        at=T0 + days(5),
    )
    services.deal_close_lost(
        deal=Deal.objects.get(pk=second.pk), lost_reason=lost_reason(), at=T0 + days(6)
    )
    assert_tally_matches()
    assert tallied()[
        (rep.pk, Stage.objects.get(key="lost").pk, 5, lost_reason("被竞争对手拿下").pk)
    ] == (1, 1, 1)
    # A rep takes the lost deal over and rewrites its notes; a plain UPDATE clears them.
    services.deal_update(deal=Deal.objects.get(pk=first.pk), owner=bob)
    Deal.objects.filter(pk=second.pk).update(lost_notes="预算砍了")
    assert_tally_matches()
    Deal.objects.filter(pk=second.pk).update(lost_notes="", competitor=rival)
    assert_tally_matches()
    services.deal_delete(deal=Deal.objects.get(pk=first.pk))
    assert_tally_matches()
    assert sum(v[0] for v in tallied().values()) == 1


@pytest.mark.parametrize("recount", [False, True], ids=["triggers", "recounted"])
def test_imports_keep_the_tally_with_the_triggers_or_a_recount(tmp_path, rep, monkeypatch, recount):
    from leakmap.crm.models import TallySwitch

    monkeypatch.setattr(
        "leakmap.exchange.importers.base.TALLY_RECOUNT_FROM", 0 if recount else 10**9
    )
    run_import(
        "leads",
        write(
            tmp_path / "leads.csv",
            "external_id,name,owner,source,created_at\nL1,张三,alice,官网,2026-01-05\n",
        ),
    )
    import_deals(tmp_path)
    run_import(
        "deals",
        write(
            tmp_path / "lost.csv",
            "external_id,name,amount,stage,owner,created_at,closed_at,lost_reason,competitor\n"
            "D3,单子三,300,lost,alice,2026-01-06,2026-01-30,被竞争对手拿下,某竞品\n"
            "D4,单子四,400,lost,alice,2026-01-06,2026-01-31,价格过高,\n",
        ),
    )
    Deal.objects.filter(external_id="D3").update(lost_notes="对方便宜三成")
    import_history(tmp_path)  # recounts the deal tallies in the recounted case
    assert_tally_matches()
    assert not TallySwitch.objects.filter(deals_paused=True).exists()
    # The triggers count again after the import.
    services.deal_delete(deal=Deal.objects.get(external_id="D3"))
    assert_tally_matches()
