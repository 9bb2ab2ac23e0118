from __future__ import annotations

import pytest

from leakmap.crm import services
from leakmap.crm.models import StageChange
from tests.analytics.journeys import day, deal


@pytest.fixture
def company(rep, teammate, outsider):
    """Six deals whose every figure is worked out by hand in the tests.

    alice (rep):  D1 1000: created d0, proposal d3 (skips needs_analysis), lost d9 (价格过高)
                  D2 2000: created d1, needs_analysis d2, negotiation d5, won d11
                  D3 3000: created d0, proposal d2, won d4, reopened to negotiation d6,
                           lost d8 to 竞品A (被竞争对手拿下)
    bob (teammate): D4 4000: created d2, still in qualification, a follow-up on d3
                    D5 5000: created d0, won d20 straight from qualification
    mallory (outsider): D6 6000: created d1 in needs_analysis, no history rows at all
    """
    d = {}
    d[1] = deal(owner=rep, created=day(0), amount=1000).enters("proposal", day(3)).lost(day(9))
    d[2] = (
        deal(owner=rep, created=day(1), amount=2000)
        .enters("needs_analysis", day(2))
        .enters("negotiation", day(5))
        .won(day(11))
    )
    d[3] = (
        deal(owner=rep, created=day(0), amount=3000)
        .enters("proposal", day(2))
        .won(day(4))
        .enters("negotiation", day(6))
        .lost(day(8), reason="被竞争对手拿下", competitor="竞品A")
    )
    d[4] = deal(owner=teammate, created=day(2), amount=4000).follow_up(day(3))
    d[5] = deal(owner=teammate, created=day(0), amount=5000).won(day(20))
    d[6] = deal(owner=outsider, created=day(1), amount=6000, stage_key="needs_analysis")
    # Imported legacy data can come without history; facts then follow the fallback rules.
    StageChange.objects.filter(deal=d[6].deal).delete()
    services.deals_refresh_facts([d[6].deal.pk])
    return {k: j.deal for k, j in d.items()}
