"""The counting interface (analytics.counts) gives, for every kind of scope, the cells a plain
recount from the records gives: each deal's state at the clock replayed from its history in
Python, then grouped. Whether the cells come from the tallies or from the records is the
engine's choice; these tests do not care which, only that both kinds of scope are covered
(the tallies serve "now", narrowed by owner; the records a period, a past date, a source)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db.models import DateTimeField, F, Value
from hypothesis import given
from hypothesis import strategies as st

from leakmap.analytics import counts
from leakmap.analytics.base import deal_states, load_stages, lost_q, open_q, tally_owners
from leakmap.analytics.filters import ReportFilters, Scope, resolve
from leakmap.crm import rules
from leakmap.crm.models import Activity, Deal, Lead, StageKind, WholeSecondsBetween
from tests.analytics.journeys import day
from tests.analytics.test_properties import CLOCK, SETTINGS, random_company


def scope_at(now: dt.datetime, **filters) -> Scope:
    """A scope evaluated "now" at a fixed moment, as if the report ran then without --as-of."""
    return dataclasses.replace(resolve(ReportFilters(**filters)), now=now)


def in_scope(scope: Scope, created: dt.datetime, owner_id, team_id, source_id) -> bool:
    if scope.start is not None and created < scope.start:
        return False
    if scope.end is not None and created >= scope.end:
        return False
    if scope.historical and created > scope.now:
        return False
    if scope.owner_id is not None and owner_id != scope.owner_id:
        return False
    if scope.team_id is not None and team_id != scope.team_id:
        return False
    return scope.source_id is None or source_id == scope.source_id


def deal_state(deal: Deal, t: dt.datetime) -> tuple[int, int, dt.datetime | None]:
    """(stage, highest non-lost order reached, close time) of a deal at t, from its history:
    the newest entry at or before t; without one, its first entry's stage (or, with no history,
    its stage now) since creation, and the reached order the services keep."""
    history = list(deal.stage_changes.select_related("to_stage").order_by("at", "id"))
    upto = [c for c in history if c.at <= t]
    if upto:
        stage = upto[-1].to_stage
        orders = [c.to_stage.order for c in upto if c.to_stage.kind != StageKind.LOST]
        reached = max(orders) if orders else deal.reached_order
        closed = upto[-1].at if stage.kind != StageKind.OPEN else None
        return stage.pk, reached, closed
    stage = history[0].to_stage if history else deal.stage
    closed = (deal.closed_at or None) if stage.kind != StageKind.OPEN else None
    return stage.pk, deal.reached_order, closed


def seconds_between(closed: dt.datetime, deal: Deal) -> int:
    """Whole seconds from the deal's creation to `closed`, as the database rounds them
    (crm.models.WholeSecondsBetween: SQLite reads times to the millisecond, so a time a few
    microseconds from half a second can round the other way than exact arithmetic)."""
    return (
        Deal.objects.filter(pk=deal.pk)
        .annotate(s=WholeSecondsBetween(Value(closed, DateTimeField()), F("created_at")))
        .values_list("s", flat=True)
        .get()
    )


def recounted_deal_cells(scope: Scope) -> set:
    cells: dict = defaultdict(lambda: [0, Decimal(0), 0, 0, 0])
    for deal in Deal.objects.select_related("owner", "stage"):
        if not in_scope(scope, deal.created_at, deal.owner_id, deal.owner.team_id, deal.source_id):
            continue
        stage, reached, closed = deal_state(deal, scope.now)
        c = cells[(deal.owner_id, stage, reached)]
        c[0] += 1
        c[1] += deal.amount
        c[2] += Activity.objects.filter(
            deal=deal, done_at__isnull=False, done_at__lte=scope.now
        ).count()
        if closed is not None:
            c[3] += seconds_between(closed, deal)
            c[4] += 1
    return {
        counts.DealCell(owner, stage, reached, n, amount, fu, cyc, cyc_n)
        for (owner, stage, reached), (n, amount, fu, cyc, cyc_n) in cells.items()
    }


def recounted_lead_cells(scope: Scope) -> set:
    cells: dict = defaultdict(lambda: [0, 0, 0])
    for lead in Lead.objects.select_related("owner"):
        team = lead.owner.team_id if lead.owner else None
        if scope.team_id is not None and lead.owner is None:
            continue
        if not in_scope(scope, lead.created_at, lead.owner_id, team, lead.source_id):
            continue
        c = cells[(lead.owner_id, lead.source_id)]
        c[0] += 1
        c[1] += lead.converted_at is not None and lead.converted_at <= scope.now
        contact = lead.first_contacted_at
        c[2] += (
            contact is not None
            and contact <= scope.now
            and contact - lead.created_at < rules.FIRST_CONTACT_WITHIN
        )
    return {counts.LeadCell(o, s, n, conv, fast) for (o, s), (n, conv, fast) in cells.items()}


def scopes() -> list[Scope]:
    """Every kind of scope: now (whole company, one rep, one team), a period, a past date, a
    period seen from a past date, a source."""
    out = [scope_at(CLOCK)]
    for user in Deal.objects.values_list("owner__username", flat=True).distinct()[:2]:
        out.append(scope_at(CLOCK, owner=user))
    team = Deal.objects.filter(owner__team__isnull=False).values_list(
        "owner__team__name", flat=True
    )
    if team.exists():
        out.append(scope_at(CLOCK, team=team.first()))
    out.append(scope_at(CLOCK, date_from=day(3).date(), date_to=day(15).date()))
    for t in (day(5), day(12.5), day(21), CLOCK):
        out.append(resolve(ReportFilters(as_of=t)))
    out.append(
        resolve(ReportFilters(as_of=day(18), date_from=day(2).date(), date_to=day(9).date()))
    )
    source = Lead.objects.filter(source__isnull=False).values_list("source__name", flat=True)
    if source.exists():
        out.append(scope_at(CLOCK, source=source.first()))
    return out


def test_the_scopes_cover_both_ways_of_counting(company):
    kinds = {tally_owners(s) is not None for s in scopes()}
    assert kinds == {True, False}


def test_deal_cells_of_the_hand_worked_company_equal_a_recount(company):
    stages = load_stages()
    for scope in scopes():
        got = set(counts.deal_cells(scope, stages, follow_ups=True))
        assert got == recounted_deal_cells(scope), scope.filters


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_deal_and_lead_cells_equal_a_recount_on_random_histories(db, seed):
    with random_company(seed):
        stages = load_stages()
        for scope in scopes():
            got = set(counts.deal_cells(scope, stages, follow_ups=True))
            assert got == recounted_deal_cells(scope), scope.filters
            leads = set(counts.lead_cells(scope, by=("owner", "source"), conversions=True))
            assert leads == recounted_lead_cells(scope), scope.filters
            assert counts.lead_count(scope) == sum(c.n for c in leads)
            for kind, q in ((StageKind.OPEN, open_q(stages)), (StageKind.LOST, lost_q(stages))):
                by_kind = deal_states(scope, stages, kind=kind).values_list("pk", flat=True)
                filtered = deal_states(scope, stages).filter(q).values_list("pk", flat=True)
                assert set(by_kind) == set(filtered), (kind, scope.filters)


def test_an_unknown_grouping_is_refused(db):
    with pytest.raises(ValueError, match="team"):
        counts.lead_cells(scope_at(CLOCK), by=("team",))
