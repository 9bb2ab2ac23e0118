"""Deal.lead_source, the source of a deal's lead, is a fact the services keep (the sources
report groups deals by it instead of joining every deal to its lead). Every way a lead's source
or a deal's lead changes must keep it equal to the record."""

from __future__ import annotations

from leakmap.crm import services
from leakmap.crm.models import Deal
from tests.exchange.helpers import run_import, write
from tests.factories import T0, LeadFactory, SourceFactory, days, make_deal


def fact_matches_the_record() -> bool:
    return all(
        d.lead_source_id == (d.lead.source_id if d.lead_id else None)
        for d in Deal.objects.select_related("lead")
    )


def test_the_services_keep_each_deals_lead_source(rep):
    web, fair = SourceFactory(name="官网"), SourceFactory(name="展会")
    lead = LeadFactory(owner=rep, source=web)
    converted = services.lead_convert(lead=lead, by=rep, at=T0 + days(1))
    other = make_deal(owner=rep)
    assert (converted.lead_source_id, other.lead_source_id) == (web.pk, None)

    services.lead_update(lead=lead, source=fair)  # a lead's source corrected
    assert Deal.objects.get(pk=converted.pk).lead_source_id == fair.pk

    services.deal_update(deal=Deal.objects.get(pk=other.pk), lead=lead)  # a deal given a lead
    assert Deal.objects.get(pk=other.pk).lead_source_id == fair.pk
    assert fact_matches_the_record()

    services.lead_delete(lead=lead)  # the deals stay, without a lead
    assert set(Deal.objects.values_list("lead_source_id", flat=True)) == {None}
    assert fact_matches_the_record()


def test_imports_keep_each_deals_lead_source(tmp_path, rep):
    run_import(
        "leads",
        write(
            tmp_path / "leads.csv",
            "external_id,name,owner,source,created_at\n"
            "L1,张三,alice,官网,2026-01-05\nL2,李四,alice,展会,2026-01-05\n",
        ),
    )
    run_import(
        "deals",
        write(
            tmp_path / "deals.csv",
            "external_id,lead_external_id,name,amount,stage,owner,source,created_at\n"
            # D1's own source differs from its lead's: the fact follows the lead.
            "D1,L1,单子一,100,qualification,alice,展会,2026-01-06\n"
            "D2,L2,单子二,100,qualification,alice,,2026-01-06\n"
            "D3,,单子三,100,qualification,alice,官网,2026-01-06\n",
        ),
    )
    facts = dict(Deal.objects.values_list("external_id", "lead_source__name"))
    assert facts == {"D1": "官网", "D2": "展会", "D3": None}
    # A re-import of the leads that moves L1 to another source moves its deal's fact too.
    run_import(
        "leads",
        write(
            tmp_path / "leads2.csv",
            "external_id,name,owner,source,created_at\nL1,张三,alice,转介绍,2026-01-05\n",
        ),
    )
    assert Deal.objects.get(external_id="D1").lead_source.name == "转介绍"
    assert fact_matches_the_record()
