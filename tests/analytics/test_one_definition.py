"""The diagnosis prices a deal with one deal -> won rate: the contract's win_rate, won / deals
(crm.rules), the owners report's figure, not won / closed in some of its checks."""

from __future__ import annotations

from leakmap.analytics import ReportFilters
from leakmap.analytics.diagnosis import collect
from leakmap.analytics.filters import resolve
from leakmap.crm import rules, services
from tests.analytics.journeys import rows
from tests.factories import T0, days, lost_reason, make_deal


def test_it_uses_won_over_deals_as_the_diagnosis_deal_to_won_rate(rep):
    won = make_deal(owner=rep)
    services.deal_close_won(deal=won, at=T0 + days(1))
    lost = make_deal(owner=rep)
    services.deal_close_lost(deal=lost, lost_reason=lost_reason(), at=T0 + days(1))
    make_deal(owner=rep)
    make_deal(owner=rep)

    inp = collect(resolve(ReportFilters()))
    assert (inp.deals, inp.won, inp.closed) == (4, 1, 2)
    assert inp.deal_won_rate == rules.win_rate(1, 4) == 0.25
    # The owners report's win_rate for the same deals.
    assert rows("owners")[0]["win_rate"] == inp.deal_won_rate
