"""Declared deal journeys for analytics tests (PostHog's journeys_for, in our words):

    deal(owner=rep, created=day(0)).enters("proposal", day(3)).lost(day(9), reason="价格过高")

Every step goes through leakmap.crm.services, so history and per-deal facts are the real ones.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from leakmap.analytics import ReportFilters, run_report
from leakmap.crm import services
from leakmap.crm.models import Deal, Lead, LostReason, Source
from tests.factories import CompetitorFactory, SourceFactory, make_deal, stage

# Monday 2026-01-05 09:00 UTC = 17:00 in Asia/Shanghai.
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def day(n: float, hours: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=n, hours=hours)


class Journey:
    def __init__(self, deal: Deal):
        self.deal = deal

    def enters(self, key: str, at: dt.datetime) -> Journey:
        self.deal = services.deal_move(deal=self.deal, stage=stage(key), at=at)
        return self

    def won(self, at: dt.datetime) -> Journey:
        self.deal = services.deal_close_won(deal=self.deal, at=at)
        return self

    def lost(
        self, at: dt.datetime, reason: str = "价格过高", competitor: str | None = None
    ) -> Journey:
        self.deal = services.deal_close_lost(
            deal=self.deal,
            lost_reason=LostReason.objects.get(name=reason),
            competitor=CompetitorFactory(name=competitor) if competitor else None,
            at=at,
        )
        return self

    def follow_up(self, at: dt.datetime) -> Journey:
        services.activity_log(
            services.ActivityInput(
                owner=self.deal.owner, kind="call", deal=self.deal, done_at=at, created_at=at
            )
        )
        self.deal.refresh_from_db()
        return self


def deal(
    *,
    owner,
    created: dt.datetime,
    amount: int | str = 1000,
    source: str | Source | None = None,
    lead: Lead | None = None,
    stage_key: str | None = None,
    expected: dt.date | None = dt.date(2026, 3, 31),
    industry=None,
) -> Journey:
    if isinstance(source, str):
        source = SourceFactory(name=source)
    return Journey(
        make_deal(
            owner=owner,
            amount=Decimal(str(amount)),
            created_at=created,
            source=source,
            lead=lead,
            stage_key=stage_key,
            expected_close_date=expected,
            industry=industry,
        )
    )


def lead(*, owner, created: dt.datetime, source: str | None = None) -> Lead:
    return services.lead_create(
        services.LeadInput(
            name="Lead",
            owner=owner,
            source=SourceFactory(name=source) if source else None,
            created_at=created,
        )
    )


def report(name: str, **filters):
    return run_report(name, ReportFilters(**filters))


def rows(name: str, **filters) -> list[dict]:
    return report(name, **filters).to_json()["rows"]


def by(rows_: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows_}
