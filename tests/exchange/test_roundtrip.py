"""Import of real files (BOM, GB18030, xlsx), re-import, export → import round trips, and the
per-deal facts an import leaves equal to those the services keep."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from openpyxl import Workbook

from leakmap.accounts.models import User
from leakmap.crm import services
from leakmap.crm.models import (
    Account,
    Activity,
    Competitor,
    Contact,
    Deal,
    Industry,
    Lead,
    LeadStatus,
    Source,
    Spend,
    StageChange,
)
from leakmap.exchange.columns import IMPORT_ORDER
from tests.exchange.helpers import run_export, run_import, write
from tests.factories import T0, days, lost_reason, stage

pytestmark = pytest.mark.django_db

SH = dt.timezone(dt.timedelta(hours=8))


def test_it_reads_utf8_with_a_bom_and_gb18030_as_chinese_excel_saves_them(tmp_path, rep):
    text = "external_id,name,company,source,owner,created_at\nL1,张三,上海恒达科技有限公司,百度广告,alice,2026-01-05 09:30\n"
    run_import("leads", write(tmp_path / "bom.csv", "\ufeff" + text))
    run_import("leads", write(tmp_path / "gbk.csv", text.replace("L1", "L2"), encoding="gb18030"))
    for ext in ("L1", "L2"):
        lead = Lead.objects.get(external_id=ext)
        assert (lead.name, lead.company, lead.source.name, lead.owner) == (
            "张三",
            "上海恒达科技有限公司",
            "百度广告",
            rep,
        )
        # No offset: read in Asia/Shanghai.
        assert lead.created_at == dt.datetime(2026, 1, 5, 1, 30, tzinfo=dt.UTC)


def test_it_reads_xlsx_with_typed_cells(tmp_path, rep):
    wb = Workbook()
    ws = wb.active
    ws.append(["created_at", "name", "external_id", "budget", "owner"])  # any column order
    ws.append([dt.datetime(2026, 1, 5, 10, 0), "李四", "X1", 12500.5, "alice"])
    ws.append([dt.date(2026, 1, 6), "王五", "X2", 3000, "alice"])
    wb.save(tmp_path / "leads.xlsx")
    out, _ = run_import("leads", tmp_path / "leads.xlsx")
    assert out.splitlines()[0] == "leads: 2 rows, 2 created, 0 updated"
    x1, x2 = Lead.objects.get(external_id="X1"), Lead.objects.get(external_id="X2")
    assert x1.budget == Decimal("12500.50") and x2.budget == Decimal("3000.00")
    assert x1.created_at == dt.datetime(2026, 1, 5, 10, 0, tzinfo=SH)
    assert x2.created_at == dt.datetime(2026, 1, 6, 0, 0, tzinfo=SH)  # bare date → 00:00 local


def test_it_updates_on_reimport_instead_of_duplicating(tmp_path, rep):
    head = "external_id,name,owner,source,created_at,budget\n"
    run_import(
        "leads",
        write(
            tmp_path / "a.csv",
            head + "L1,张三,alice,展会,2026-01-05,100\nL2,李四,alice,展会,2026-01-05,200\n",
        ),
    )
    out, _ = run_import(
        "leads",
        write(
            tmp_path / "b.csv",
            head + "L1,张三丰,alice,展会,2026-01-05,150\nL3,王五,bob,官网表单,2026-01-07,\n",
        ),
    )
    assert out.splitlines() == [
        "leads: 2 rows, 1 created, 1 updated",
        "new lookups: 1 owner, 1 source",
    ]
    assert Lead.objects.count() == 3
    l1 = Lead.objects.get(external_id="L1")
    assert (l1.name, l1.budget) == ("张三丰", Decimal("150.00"))
    bob = User.objects.get(username="bob")
    assert (bob.role, bob.has_usable_password()) == ("rep", False)


def test_it_converts_the_lead_and_takes_its_owner_and_source_for_a_deal(tmp_path, rep, teammate):
    run_import(
        "leads",
        write(
            tmp_path / "l.csv",
            "external_id,name,owner,source,created_at\nL1,张三,bob,展会,2026-01-05\n",
        ),
    )
    run_import(
        "deals",
        write(
            tmp_path / "d.csv",
            "external_id,lead_external_id,name,amount,stage,created_at\nD1,L1,大单,5000,初步接洽,2026-01-08T10:00\n",
        ),
    )
    deal = Deal.objects.get(external_id="D1")
    lead = Lead.objects.get(external_id="L1")
    assert (deal.owner, deal.source.name, deal.lead) == (teammate, "展会", lead)
    assert (lead.status, lead.converted_at) == (
        LeadStatus.CONVERTED,
        dt.datetime(2026, 1, 8, 10, tzinfo=SH),
    )
    # No history rows yet: the deal counts as having entered its stage at created_at.
    assert (deal.reached_order, deal.stage_entered_at) == (
        stage("qualification").order,
        deal.created_at,
    )


def _company_built_by_services(rep, teammate, outsider):
    """A small company whose every write went through the services."""
    baidu = services.source_get_or_create("百度广告")
    expo = services.source_get_or_create("展会")
    mfg = services.industry_get_or_create("制造业")
    leads = [
        services.lead_create(
            services.LeadInput(
                name=f"客户{i}",
                company=f"公司{i}",
                owner=owner,
                source=src,
                industry=mfg,
                budget=Decimal("10000") * (i + 1),
                created_at=T0 + days(i),
                external_id=f"L{i}",
            )
        )
        for i, (owner, src) in enumerate(
            [
                (rep, baidu),
                (rep, expo),
                (teammate, expo),
                (teammate, baidu),
                (outsider, baidu),
                (rep, expo),
            ]
        )
    ]
    d0 = services.lead_convert(
        lead=leads[0],
        data=services.ConversionInput(external_id="D0", expected_close_date=dt.date(2026, 3, 1)),
        at=T0 + days(1),
    )
    services.deal_move(deal=d0, stage=stage("proposal"), at=T0 + days(3))  # skips needs_analysis
    services.deal_close_won(deal=d0, at=T0 + days(9))
    d1 = services.lead_convert(
        lead=leads[1],
        data=services.ConversionInput(external_id="D1", expected_close_date=dt.date(2026, 3, 1)),
        at=T0 + days(2),
    )
    services.deal_move(deal=d1, stage=stage("needs_analysis"), at=T0 + days(4))
    services.deal_move(deal=d1, stage=stage("proposal"), at=T0 + days(6))
    services.deal_move(deal=d1, stage=stage("negotiation"), at=T0 + days(8))
    comp = services.competitor_get_or_create("销售易")
    services.deal_close_lost(
        deal=d1, lost_reason=lost_reason("被竞争对手拿下"), competitor=comp, at=T0 + days(12)
    )
    d2 = services.lead_convert(
        lead=leads[2], data=services.ConversionInput(external_id="D2"), at=T0 + days(3)
    )
    services.deal_close_lost(deal=d2, lost_reason=lost_reason("失去联系"), at=T0 + days(5))
    services.deal_move(deal=d2, stage=stage("needs_analysis"), at=T0 + days(7))  # reopened
    d3 = services.lead_convert(
        lead=leads[3], data=services.ConversionInput(external_id="D3"), at=T0 + days(4)
    )
    services.lead_disqualify(lead=leads[4], reason="无预算")
    n = 0
    for deal, owner, offsets in [(d0, rep, [2, 5, 8]), (d1, rep, [3, 7]), (d3, teammate, [5])]:
        for off in offsets:
            n += 1
            services.activity_log(
                services.ActivityInput(
                    owner=owner,
                    kind="call",
                    deal=deal,
                    done_at=T0 + days(off),
                    created_at=T0 + days(off),
                    external_id=f"A{n}",
                    subject="跟进",
                )
            )
    services.activity_log(
        services.ActivityInput(
            owner=rep,
            kind="call",
            lead=leads[5],
            done_at=T0 + days(6),
            created_at=T0 + days(6),
            external_id="A-L5",
        )
    )
    services.activity_log(
        services.ActivityInput(
            owner=teammate,
            kind="task",
            deal=d3,
            due_at=T0 + days(20),
            created_at=T0 + days(5),
            external_id="A-T",
        )
    )
    Spend.objects.create(source=baidu, month=dt.date(2026, 1, 1), amount=Decimal("8000.00"))
    Spend.objects.create(source=expo, month=dt.date(2026, 1, 1), amount=Decimal("20000.00"))


DEAL_FACTS = (
    "reached_order",
    "lost_at_stage_id",
    "stage_entered_at",
    "last_follow_up_at",
    "follow_up_count",
    "closed_at",
    "stage_id",
)


def _facts():
    return (
        {d["external_id"]: d for d in Deal.objects.values("external_id", *DEAL_FACTS)},
        dict(Lead.objects.values_list("external_id", "first_contacted_at")),
        dict(Lead.objects.values_list("external_id", "status")),
        dict(Lead.objects.values_list("external_id", "converted_at")),
        list(
            StageChange.objects.order_by("deal__external_id", "at", "id").values_list(
                "deal__external_id", "to_stage__key", "at", "left_at", "reached_before"
            )
        ),
    )


def _export_all(directory, suffix=".csv"):
    directory.mkdir()
    for kind in IMPORT_ORDER:
        run_export(kind, directory / f"{kind}{suffix}")
    return directory


def _empty_the_database():
    for model in (
        Activity,
        StageChange,
        Deal,
        Contact,
        Account,
        Lead,
        Spend,
        Source,
        Industry,
        Competitor,
    ):
        model.objects.all().delete()
    User.objects.all().delete()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_it_round_trips_and_keeps_the_facts_the_services_kept(
    tmp_path, rep, teammate, outsider, admin_user, suffix
):
    _company_built_by_services(rep, teammate, outsider)
    services_facts = _facts()
    first = _export_all(tmp_path / "first", suffix)

    _empty_the_database()
    for kind in IMPORT_ORDER:
        run_import(kind, first / f"{kind}{suffix}")
    assert _facts() == services_facts

    second = _export_all(tmp_path / "second")
    if suffix == ".xlsx":
        first = _export_all(tmp_path / "first-csv")  # compare like with like
    for kind in IMPORT_ORDER:
        assert (second / f"{kind}.csv").read_bytes() == (first / f"{kind}.csv").read_bytes(), kind
    # And a second import of the same files changes nothing.
    for kind in IMPORT_ORDER:
        run_import(kind, second / f"{kind}.csv")
    assert _facts() == services_facts
    assert (Deal.objects.count(), StageChange.objects.count(), Activity.objects.count()) == (
        4,
        12,
        8,
    )


def test_it_exports_the_contract_columns(tmp_path, rep):
    _company_built_by_services(rep, rep, rep)
    run_export("deals", tmp_path / "deals.csv")
    lines = (tmp_path / "deals.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == (
        "external_id,lead_external_id,name,account,contact,amount,stage,owner,source,industry,"
        "created_at,expected_close_date,closed_at,lost_reason,competitor,next_follow_up"
    )
    assert lines[2] == (
        "D1,L1,公司1 - 客户1,公司1,客户1,20000.00,lost,alice,展会,制造业,2026-01-07T17:00:00+08:00,"
        "2026-03-01,2026-01-17T17:00:00+08:00,被竞争对手拿下,销售易,"
    )


def test_it_records_a_stage_change_when_a_reimport_moves_a_deal(tmp_path, rep):
    _company_built_by_services(rep, rep, rep)
    run_export("deals", tmp_path / "deals.csv")
    text = (tmp_path / "deals.csv").read_text(encoding="utf-8-sig")
    # D3 is in qualification; the file now says it was won on Jan 20.
    lines = text.splitlines()
    d3 = next(i for i, line in enumerate(lines) if line.startswith("D3,"))
    cells = lines[d3].split(",")
    # Won passes proposal, which requires an expected close date.
    cells[6], cells[11], cells[12] = "won", "2026-02-01", "2026-01-20T10:00:00+08:00"
    lines[d3] = ",".join(cells)
    write(tmp_path / "deals2.csv", "\n".join(lines) + "\n")
    run_import("deals", tmp_path / "deals2.csv")
    deal = Deal.objects.get(external_id="D3")
    history = list(deal.stage_changes.order_by("at").values_list("to_stage__key", "at"))
    assert history[-1] == ("won", dt.datetime(2026, 1, 20, 2, tzinfo=dt.UTC))
    assert (deal.stage.key, deal.reached_order, deal.stage_entered_at) == (
        "won",
        stage("won").order,
        deal.closed_at,
    )


def test_it_hands_imported_leads_without_an_owner_to_the_assignment_rules(
    tmp_path, rep, teammate, team
):
    from leakmap.automation.models import AssignmentRule

    AssignmentRule.objects.create(name="East", team=team)
    path = write(
        tmp_path / "leads.csv",
        "external_id,name,source,owner,created_at\n"
        "W1,甲,官网表单,,2026-02-01\n"
        "W2,乙,官网表单,,2026-02-01\n"
        "W3,丙,官网表单,alice,2026-02-01\n"
        "W4,丁,官网表单,,2026-02-01\n",
    )
    from django.utils import translation

    with translation.override("en"):
        out, _err = run_import("leads", path)
    owners = dict(Lead.objects.values_list("external_id", "owner__username"))
    assert owners["W3"] == "alice"
    unowned = [owners[k] for k in ("W1", "W2", "W4")]
    assert None not in unowned
    # Round-robin over the team's reps (the manager does not take leads).
    assert sorted(unowned).count("alice") in (1, 2) and set(unowned) <= {"alice", "bob"}
    assert "3 new leads without an owner were assigned by the assignment rules" in out


def test_deals_reuse_accounts_and_contacts_across_batches_and_create_the_missing_once(
    tmp_path, rep, monkeypatch
):
    from leakmap.exchange.importers.deals import DealsImporter

    monkeypatch.setattr(DealsImporter, "batch_size", 2)  # the name cache must span batches
    old = Account.objects.create(name="老客户", created_at=T0)
    Account.objects.create(name="老客户", created_at=T0)  # a duplicate name: the oldest wins
    wang = Contact.objects.create(account=old, name="王经理", created_at=T0)
    loose = Contact.objects.create(name="散客", created_at=T0)
    rows = [
        "D1,老客户,王经理",
        "D2,新客户,李总",
        "D3,老客户,赵工",
        "D4,新客户,李总",
        "D5,,散客",
        "D6,老客户,赵工",
        "D7,,新散客",
        "D8,,新散客",
    ]
    run_import(
        "deals",
        write(
            tmp_path / "d.csv",
            "external_id,account,contact,name,stage,owner,created_at\n"
            + "".join(f"{r},单,qualification,alice,2026-01-08T10:00\n" for r in rows),
        ),
    )
    deal = {d.external_id: d for d in Deal.objects.all()}
    assert deal["D1"].account == old and deal["D1"].contact == wang
    assert deal["D3"].account == old and deal["D3"].contact == deal["D6"].contact
    assert deal["D3"].contact.account == old and deal["D3"].contact.name == "赵工"
    assert deal["D2"].account == deal["D4"].account != old
    assert deal["D2"].account.name == "新客户"
    assert deal["D2"].contact == deal["D4"].contact and deal["D2"].contact.name == "李总"
    assert deal["D5"].account is None and deal["D5"].contact == loose
    assert deal["D7"].contact == deal["D8"].contact and deal["D7"].contact.account is None
    assert Account.objects.count() == 3
    assert Contact.objects.count() == 5
    run_import("deals", tmp_path / "d.csv")  # a re-import creates none
    assert (Account.objects.count(), Contact.objects.count()) == (3, 5)


def test_new_accounts_and_contacts_of_imported_deals_belong_to_their_first_deals_owner(
    tmp_path, rep, teammate
):
    """As a conversion gives them the rep's; unassigned, every manager would see them."""
    kept = Account.objects.create(name="老客户", created_at=T0)  # found, so left as it is
    run_import(
        "deals",
        write(
            tmp_path / "d.csv",
            "external_id,account,contact,name,stage,owner,created_at\n"
            "D1,新客户,李总,单,qualification,bob,2026-01-08T10:00\n"
            "D2,新客户,李总,单,qualification,alice,2026-01-09T10:00\n"
            "D3,老客户,,单,qualification,alice,2026-01-09T10:00\n",
        ),
    )
    new = Account.objects.get(name="新客户")
    assert new.owner == teammate and Contact.objects.get(name="李总").owner == teammate
    kept.refresh_from_db()
    assert kept.owner is None


def test_a_history_import_sets_the_facts_the_services_would_compute(tmp_path, rep):
    """A history import sets each deal's stage facts to the contract's values, edge cases
    included: a history of only the entry into lost, a skipped stage, a deal lost after moving
    back, a won deal; and they are what a later recomputation by the services gives."""
    write(
        tmp_path / "deals.csv",
        "external_id,name,amount,stage,owner,created_at,expected_close_date,closed_at,lost_reason\n"
        "H1,只有输单,1000,lost,alice,2026-01-05,2026-03-01,2026-01-06T10:00,价格过高\n"
        "H2,跳过阶段,1000,negotiation,alice,2026-01-05,2026-03-01,,\n"
        "H3,回退后输单,1000,lost,alice,2026-01-05,2026-03-01,2026-01-20T10:00,价格过高\n"
        "H4,赢单,1000,won,alice,2026-01-05,2026-03-01,2026-01-25T10:00,\n",
    )
    run_import("deals", tmp_path / "deals.csv")
    write(
        tmp_path / "history.csv",
        "deal_external_id,stage,entered_at\n"
        "H1,lost,2026-01-06T10:00\n"
        "H2,qualification,2026-01-05T09:00\n"
        "H2,negotiation,2026-01-09T09:00\n"
        "H3,qualification,2026-01-05T09:00\n"
        "H3,proposal,2026-01-10T09:00\n"
        "H3,needs_analysis,2026-01-15T09:00\n"
        "H3,lost,2026-01-20T10:00\n"
        "H4,qualification,2026-01-05T09:00\n"
        "H4,won,2026-01-25T10:00\n",
    )
    run_import("stage-history", tmp_path / "history.csv")
    fields = ("external_id", "reached_order", "lost_at_stage__key", "stage_entered_at")
    imported = sorted(Deal.objects.values_list(*fields))
    assert [(e, r, lost) for e, r, lost, _at in imported] == [
        ("H1", stage("qualification").order, "qualification"),
        ("H2", stage("negotiation").order, None),
        ("H3", stage("proposal").order, "needs_analysis"),
        ("H4", stage("won").order, None),
    ]
    services.deals_refresh_stage_facts()
    assert sorted(Deal.objects.values_list(*fields)) == imported


def test_a_lead_with_deals_in_several_batches_is_converted_at_its_earliest_deal(
    tmp_path, rep, monkeypatch
):
    from leakmap.exchange.importers.deals import DealsImporter

    monkeypatch.setattr(DealsImporter, "batch_size", 1)  # each deal its own batch
    write(
        tmp_path / "leads.csv",
        "external_id,name,owner,status,created_at,disqualified_reason\n"
        "L1,甲,alice,disqualified,2026-01-01,预算不足\nL2,乙,alice,new,2026-01-01,\n",
    )
    run_import("leads", tmp_path / "leads.csv")
    write(
        tmp_path / "deals.csv",
        "external_id,lead_external_id,name,amount,stage,owner,created_at\n"
        "D1,L1,后来的,1000,qualification,alice,2026-01-10T09:00\n"
        "D2,L1,先来的,1000,qualification,alice,2026-01-05T09:00\n",
    )
    run_import("deals", tmp_path / "deals.csv")
    converted = {
        ext: (status, at, reason)
        for ext, status, at, reason in Lead.objects.values_list(
            "external_id", "status", "converted_at", "disqualified_reason"
        )
    }
    assert converted == {
        "L1": ("converted", dt.datetime(2026, 1, 5, 1, tzinfo=dt.UTC), ""),
        "L2": ("new", None, ""),
    }


def test_follow_up_facts_add_up_over_batches(tmp_path, rep, monkeypatch):
    """A deal whose activities span an import's batches ends with all of them counted, and a
    follow-up on a deal counts for the deal's lead."""
    from leakmap.exchange.importers.activities import ActivitiesImporter

    monkeypatch.setattr(ActivitiesImporter, "batch_size", 1)
    write(tmp_path / "leads.csv", "external_id,name,owner,created_at\nL1,甲,alice,2026-01-01\n")
    run_import("leads", tmp_path / "leads.csv")
    write(
        tmp_path / "deals.csv",
        "external_id,lead_external_id,name,amount,stage,owner,created_at,next_follow_up\n"
        "D1,L1,单,1000,qualification,alice,2026-01-02T09:00,2026-01-06\n",
    )
    run_import("deals", tmp_path / "deals.csv")
    Deal.objects.filter(external_id="D1").update(needs_attention=True)
    write(
        tmp_path / "activities.csv",
        "external_id,deal_external_id,lead_external_id,kind,done_at,due_at\n"
        "A1,D1,,call,2026-01-08T10:00,\n"
        "A2,,L1,call,2026-01-03T10:00,\n"
        "A3,D1,,email,2026-01-05T10:00,\n"
        "A4,D1,,task,,2026-02-01T10:00\n",
    )
    run_import("activities", tmp_path / "activities.csv")
    deal = Deal.objects.get(external_id="D1")
    assert (deal.follow_up_count, deal.last_follow_up_at) == (
        2,
        dt.datetime(2026, 1, 8, 2, tzinfo=dt.UTC),
    )
    assert (deal.needs_attention, deal.next_follow_up) == (False, None)
    lead = Lead.objects.get(external_id="L1")
    assert (lead.status, lead.first_contacted_at) == (
        "converted",
        dt.datetime(2026, 1, 3, 2, tzinfo=dt.UTC),
    )


def test_a_follow_up_filed_under_another_lead_still_counts_for_the_deals_lead(tmp_path, rep):
    write(
        tmp_path / "leads.csv",
        "external_id,name,owner,created_at\nL1,甲,alice,2026-01-01\nL2,乙,alice,2026-01-01\n",
    )
    run_import("leads", tmp_path / "leads.csv")
    write(
        tmp_path / "deals.csv",
        "external_id,lead_external_id,name,amount,stage,owner,created_at\n"
        "D1,L1,单,1000,qualification,alice,2026-01-02T09:00\n",
    )
    run_import("deals", tmp_path / "deals.csv")
    write(
        tmp_path / "activities.csv",
        "external_id,deal_external_id,lead_external_id,kind,done_at\n"
        "A1,D1,L2,call,2026-01-04T10:00\n",
    )
    run_import("activities", tmp_path / "activities.csv")
    first = dict(Lead.objects.values_list("external_id", "first_contacted_at"))
    at = dt.datetime(2026, 1, 4, 2, tzinfo=dt.UTC)
    assert first == {"L1": at, "L2": at}


def test_a_deals_import_never_reuses_the_id_of_a_deleted_account(tmp_path, rep):
    from leakmap.crm.models import Account

    head = "external_id,name,amount,stage,owner,created_at,account\n"
    write(tmp_path / "a.csv", head + "D1,一,1000,qualification,alice,2026-01-02,甲公司\n")
    run_import("deals", tmp_path / "a.csv")
    first = Account.objects.get(name="甲公司")
    deleted_id = first.pk
    Deal.objects.filter(account=first).delete()
    first.delete()
    write(tmp_path / "b.csv", head + "D2,二,1000,qualification,alice,2026-01-03,乙公司\n")
    run_import("deals", tmp_path / "b.csv")
    assert Account.objects.get(name="乙公司").pk > deleted_id


def test_moving_a_done_activity_to_another_deal_refreshes_the_lead_it_left(tmp_path, rep):
    """A1 is filed under lead L3 but on deal D1 of lead L1, so it counts for L1 through the deal;
    moved to deal D2, L1 has no follow-up left."""
    write(
        tmp_path / "leads.csv",
        "external_id,name,owner,created_at\nL1,甲,alice,2026-01-01\nL2,乙,alice,2026-01-01\n"
        "L3,丙,alice,2026-01-01\n",
    )
    run_import("leads", tmp_path / "leads.csv")
    write(
        tmp_path / "deals.csv",
        "external_id,lead_external_id,name,amount,stage,owner,created_at\n"
        "D1,L1,一,1000,qualification,alice,2026-01-02T09:00\n"
        "D2,L2,二,1000,qualification,alice,2026-01-02T09:00\n",
    )
    run_import("deals", tmp_path / "deals.csv")
    head = "external_id,deal_external_id,lead_external_id,kind,done_at\n"
    write(tmp_path / "a1.csv", head + "A1,D1,L3,call,2026-01-04T10:00\n")
    run_import("activities", tmp_path / "a1.csv")
    assert Lead.objects.get(external_id="L1").first_contacted_at is not None
    write(tmp_path / "a2.csv", head + "A1,D2,L3,call,2026-01-04T10:00\n")  # on D2 now
    run_import("activities", tmp_path / "a2.csv")
    first = dict(Lead.objects.values_list("external_id", "first_contacted_at"))
    at = dt.datetime(2026, 1, 4, 2, tzinfo=dt.UTC)
    assert first == {"L1": None, "L2": at, "L3": at}
