"""The seed article's three example tables come out of funnel, owners and sources when the data
says so. Deals go through services (so history and facts are real); the many plain leads are
bulk-created."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from leakmap.crm import services
from leakmap.crm.models import Lead, LeadStatus
from tests.analytics.journeys import by, day, deal, rows
from tests.factories import SourceFactory, UserFactory

CLOSE = dt.date(2026, 3, 31)


def bulk_leads(n: int, *, owner, source=None, created=None) -> list[Lead]:
    return Lead.objects.bulk_create(
        Lead(name=f"L{i}", owner=owner, source=source, created_at=created or day(0))
        for i in range(n)
    )


def test_it_reproduces_the_seed_funnel_table(rep, django_assert_max_num_queries):
    bulk_leads(1000, owner=rep)
    # (how many, amount each, furthest step): 300 deals worth ¥3,000,000 in all
    groups = [
        (20, 16000, "won"), (10, 18000, "won"),  # 30 won: ¥500,000
        (40, 12000, "negotiation"), (20, 11000, "negotiation"),  # + 60 → 90 ¥1,200,000
        (80, 9000, "proposal"), (10, 8000, "proposal"),  # + 90 → 180 ¥2,000,000
        (100, 8000, None), (20, 10000, None),  # + 120 → 300 ¥3,000,000
    ]  # fmt: skip
    for n, amount, furthest in groups:
        for _ in range(n):
            j = deal(owner=rep, created=day(1), amount=amount)
            if furthest is not None:
                j.enters("proposal", day(3))
            if furthest in ("negotiation", "won"):
                j.enters("negotiation", day(6))
            if furthest == "won":
                j.won(day(10))
            elif furthest == "negotiation":
                j.lost(day(10))

    # stages, leads count, deals aggregate, the whole-company check, the sorted reaches
    # (grouped, exact hours), won deals' days to close (a count, the middle values)
    with django_assert_max_num_queries(8):
        r = by(rows("funnel"), "step")
    seed = {  # 销售阶段: 商机数量, 阶段总金额
        "leads": (1000, None),
        "deals": (300, 3_000_000.0),
        "stage:proposal": (180, 2_000_000.0),
        "stage:negotiation": (90, 1_200_000.0),
        "won": (30, 500_000.0),
    }
    assert {k: (r[k]["count"], r[k]["amount"]) for k in seed} == seed
    # 从上一阶段转化率 30% → 60% → 50% → 33%
    assert r["deals"]["conversion_from_previous"] == 0.3
    assert r["stage:proposal"]["count"] / r["deals"]["count"] == 0.6
    assert r["stage:negotiation"]["count"] / r["stage:proposal"]["count"] == 0.5
    assert round(r["won"]["count"] / r["stage:negotiation"]["count"], 2) == 0.33
    # Between the seed's steps our pipeline has more: skipping counts as passing.
    assert r["stage:needs_analysis"]["count"] == 180
    assert r["stage:verbal"]["conversion_from_previous"] == pytest.approx(1 / 3)
    assert r["won"]["conversion_from_previous"] == 1.0


def test_it_reproduces_the_seed_owner_table(team):
    # 销售, 商机总数, 赢单数, 平均销售周期(天)
    seed = {"xiaoli": (80, 20, 40), "xiaowang": (50, 5, 60), "xiaozhang": (40, 10, 35)}
    for name, (n, won, cycle) in seed.items():
        owner = UserFactory(username=name, team=team)
        for i in range(n):
            j = deal(owner=owner, created=day(0), amount=1000)
            if i < won:
                j.won(day(cycle))
    r = by(rows("owners"), "owner")
    got = {k: (v["deals"], v["won"], v["win_rate"], v["avg_cycle_days"]) for k, v in r.items()}
    assert got == {
        "xiaoli": (80, 20, 0.25, 40.0),
        "xiaowang": (50, 5, 0.10, 60.0),
        "xiaozhang": (40, 10, 0.25, 35.0),
    }


def test_it_reproduces_the_seed_source_table(rep):
    # 线索来源, 线索数, 赢单数, 赢单金额
    seed = {
        "百度广告": (500, 10, 80_000),
        "展会": (80, 8, 200_000),
        "老客户转介绍": (40, 12, 300_000),
    }
    for name, (n_leads, won, amount) in seed.items():
        source = SourceFactory(name=name)
        leads = bulk_leads(n_leads, owner=rep, source=source)
        for lead in leads[:won]:
            d = services.lead_convert(
                lead=lead,
                data=services.ConversionInput(
                    amount=Decimal(amount) / won, expected_close_date=CLOSE
                ),
                by=rep,
                at=day(1),
            )
            services.deal_close_won(deal=d, at=day(5))
    services.lead_convert(
        lead=Lead.objects.filter(status=LeadStatus.NEW).first(), by=rep, at=day(1)
    )
    r = by(rows("sources"), "source")
    got = {
        k: (v["leads"], v["won"], round(v["win_rate"], 2), v["won_amount"]) for k, v in r.items()
    }
    assert got == {
        "百度广告": (500, 10, 0.02, 80_000.0),
        "展会": (80, 8, 0.10, 200_000.0),
        "老客户转介绍": (40, 12, 0.30, 300_000.0),
    }
    assert sum(v["deals"] for v in r.values()) == 31


def test_it_prices_sources_with_spend_of_the_periods_months(rep):
    from leakmap.crm.models import Spend

    source = SourceFactory(name="百度广告")
    Spend.objects.create(source=source, month=dt.date(2026, 1, 1), amount=Decimal("5000"))
    Spend.objects.create(source=source, month=dt.date(2026, 2, 1), amount=Decimal("7000"))
    leads = bulk_leads(4, owner=rep, source=source, created=day(1))
    d = services.lead_convert(
        lead=leads[0],
        data=services.ConversionInput(amount=Decimal("9000"), expected_close_date=CLOSE),
        by=rep,
        at=day(2),
    )
    services.deal_close_won(deal=d, at=day(3))
    jan = rows("sources", date_from=dt.date(2026, 1, 1), date_to=dt.date(2026, 1, 31))[0]
    assert (jan["spend"], jan["cost_per_lead"], jan["cost_per_won"]) == (5000.0, 1250.0, 5000.0)
    everything = rows("sources")[0]
    assert everything["spend"] == 12000.0
    feb = rows("sources", date_from=dt.date(2026, 2, 1), date_to=dt.date(2026, 2, 28))[0]
    assert (feb["leads"], feb["spend"], feb["cost_per_lead"], feb["win_rate"]) == (
        0,
        7000.0,
        None,
        None,
    )
