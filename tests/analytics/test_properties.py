"""Random company histories (through services): each report against a plain Python computation
of the contract's definition over the raw records, and properties that must always hold."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakmap.crm import services
from leakmap.crm.models import Deal, Lead, LostReason, Stage, StageChange, StageKind
from tests.analytics.journeys import by, day, rows
from tests.factories import CompetitorFactory, SourceFactory, UserFactory

CLOCK = day(90)  # after every generated event
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def generate(rnd: random.Random, owners: list, n_deals: int = 14) -> None:
    """Leads from a few sources, deals (some from leads) that move forwards, skip, go back,
    close, reopen; follow-ups; a couple of deals stripped of history (legacy imports)."""
    sources = [SourceFactory(name=n) for n in ("展会", "百度广告", "转介绍")]
    leads = [
        services.lead_create(
            services.LeadInput(
                name=f"L{i}",
                owner=rnd.choice(owners),
                source=rnd.choice(sources + [None]),
                created_at=day(rnd.uniform(0, 20)),
            )
        )
        for i in range(rnd.randint(3, 12))
    ]
    stages = list(Stage.objects.filter(pipeline__is_default=True).order_by("order"))
    open_ = [s for s in stages if s.kind == StageKind.OPEN]
    reasons = list(LostReason.objects.all())
    for i in range(n_deals):
        t = rnd.uniform(0, 25)
        owner = rnd.choice(owners)
        lead = rnd.choice(leads) if rnd.random() < 0.5 else None
        if lead is not None:
            lead.refresh_from_db()
        if lead is not None and lead.status != "converted" and lead.created_at <= day(t):
            deal = services.lead_convert(
                lead=lead,
                data=services.ConversionInput(
                    amount=Decimal(rnd.randrange(100, 10000)),
                    expected_close_date=dt.date(2026, rnd.randint(1, 4), 1),
                ),
                by=owner,
                at=day(t),
            )
        else:
            expected = rnd.choice([None, dt.date(2026, rnd.randint(1, 4), 15)])
            deal = services.deal_create(
                services.DealInput(
                    name=f"D{i}",
                    owner=owner,
                    amount=Decimal(rnd.randrange(100, 10000)),
                    expected_close_date=expected,
                    created_at=day(t),
                    stage=rnd.choice(open_[:3] if expected else open_[:2]),
                )
            )
        for _ in range(rnd.randint(0, 5)):
            t += rnd.choice([0, rnd.uniform(0.1, 8)])
            target = rnd.choice(stages)
            if target.pk == deal.stage_id:
                continue
            if target.kind == StageKind.LOST:
                reason = rnd.choice(reasons)
                deal = services.deal_move(
                    deal=deal,
                    stage=target,
                    at=day(t),
                    lost_reason=reason,
                    competitor=CompetitorFactory(name=rnd.choice(["竞品A", "竞品B"]))
                    if reason.requires_competitor
                    else None,
                )
            else:
                if deal.expected_close_date is None:
                    # deal_update saves every field: a stale object would undo the follow-up
                    # facts (reported as a services bug), so start from the stored row.
                    deal.refresh_from_db()
                    deal = services.deal_update(deal=deal, expected_close_date=dt.date(2026, 2, 1))
                deal = services.deal_move(deal=deal, stage=target, at=day(t))
            if rnd.random() < 0.4:
                services.activity_log(
                    services.ActivityInput(
                        owner=owner, kind="call", deal=deal, done_at=day(t + rnd.uniform(0, 3))
                    )
                )
        if rnd.random() < 0.12:
            StageChange.objects.filter(deal=deal).delete()
            services.deals_refresh_facts([deal.pk])


@contextmanager
def random_company(seed: int, max_deals: int = 30) -> Iterator[random.Random]:
    """Three reps and up to `max_deals` generated deals, inside a transaction rolled back
    afterwards (hypothesis runs many examples in one test database); yields the generator so
    a test can draw more from the same seed."""
    with transaction.atomic():
        owners = [UserFactory(username=f"rep{i}") for i in range(3)]
        rnd = random.Random(seed)
        generate(rnd, owners, n_deals=rnd.randint(0, max_deals))
        yield rnd
        transaction.set_rollback(True)


# --- The contract's definitions, computed the plain way ------------------------------------------


def history(deal: Deal) -> list[StageChange]:
    return list(deal.stage_changes.select_related("to_stage").order_by("at", "id"))


def reached(deal: Deal, s: Stage) -> bool:
    h = history(deal)
    if not h:
        return deal.reached_order >= s.order
    return any(c.to_stage.kind != StageKind.LOST and c.to_stage.order >= s.order for c in h)


def expected_funnel(open_stages) -> dict:
    deals = list(Deal.objects.select_related("stage"))
    out = {
        "leads": Lead.objects.count(),
        "deals": (len(deals), sum(d.amount for d in deals)),
    }
    for s in open_stages:
        hit = [d for d in deals if reached(d, s)]
        out[f"stage:{s.key}"] = (len(hit), sum(d.amount for d in hit))
    won = [d for d in deals if d.stage.kind == StageKind.WON]
    out["won"] = (len(won), sum(d.amount for d in won))
    return out


def expected_funnel_medians(open_stages) -> dict[str, float | None]:
    """Median days from a deal's creation to its first history entry into the step or a later
    non-lost stage (0 without history); for won, to its close."""
    deals = list(Deal.objects.all())
    out = {}
    for s in open_stages:
        values = []
        for d in deals:
            h = history(d)
            if not h:
                if d.reached_order >= s.order:
                    values.append(0.0)
                continue
            first = next(
                (c for c in h if c.to_stage.kind != StageKind.LOST and c.to_stage.order >= s.order),
                None,
            )
            if first is not None:
                values.append(days_between(first.at, d.created_at))
        out[f"stage:{s.key}"] = median(values)
    out["won"] = median(
        [
            days_between(d.closed_at, d.created_at)
            for d in Deal.objects.select_related("stage")
            if d.stage.kind == StageKind.WON
        ]
    )
    return out


def days_between(a: dt.datetime, b: dt.datetime) -> float:
    return round((a - b).total_seconds()) / 86400


def median(values):
    return round(statistics.median(values), 4) if values else None


def p90(values):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[-(-9 * len(ordered) // 10) - 1], 4)


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_it_matches_the_contract_definitions_on_random_data(db, seed):
    with transaction.atomic():
        owners = [UserFactory(username=f"rep{i}") for i in range(3)]
        generate(random.Random(seed), owners)
        check_against_python()
        transaction.set_rollback(True)


def check_against_python() -> None:
    open_stages = list(
        Stage.objects.filter(pipeline__is_default=True, kind="open").order_by("order")
    )
    exp = expected_funnel(open_stages)
    got = by(rows("funnel"), "step")
    assert got["leads"]["count"] == exp["leads"]
    for key, (n, amount) in ((k, v) for k, v in exp.items() if k != "leads"):
        assert (got[key]["count"], Decimal(str(got[key]["amount"]))) == (n, amount), key
    # Medians both ways: the whole company now (sorted reaches) and as of the clock (sorting).
    medians = expected_funnel_medians(open_stages)
    as_of = by(rows("funnel", as_of=CLOCK), "step")
    for key, value in medians.items():
        assert (got[key]["median_days"], as_of[key]["median_days"]) == (value, value), key

    deals = list(Deal.objects.select_related("stage", "owner", "lost_reason", "lead__source"))
    won = [d for d in deals if d.stage.kind == StageKind.WON]
    lost = [d for d in deals if d.stage.kind == StageKind.LOST]

    owners = by(rows("owners"), "owner")
    for name, row in owners.items():
        mine = [d for d in deals if d.owner.username == name]
        w = [d for d in mine if d.stage.kind == StageKind.WON]
        lo = [d for d in mine if d.stage.kind == StageKind.LOST]
        assert row["deals"] == len(mine)
        assert (row["won"], row["lost"]) == (len(w), len(lo))
        assert row["win_rate"] == len(w) / len(mine)
        assert row["close_rate"] == (len(w) / (len(w) + len(lo)) if w or lo else None)
        cycles = [days_between(d.closed_at, d.created_at) for d in w]
        assert row["avg_cycle_days"] == (round(sum(cycles) / len(cycles), 4) if cycles else None)
        fu = [d.activities.filter(done_at__isnull=False).count() for d in mine]
        assert row["avg_follow_ups_per_deal"] == sum(fu) / len(fu)

    cycle = rows("cycle")
    for row in cycle:
        values = [
            days_between(d.closed_at, d.created_at) for d in won if d.owner.username == row["owner"]
        ]
        assert (row["median_days"], row["p90_days"]) == (median(values), p90(values))

    reasons = by(rows("lost-reasons"), "reason")
    for reason, row in reasons.items():
        mine = [d for d in lost if (d.lost_reason.name if d.lost_reason else None) == reason]
        assert row["deals"] == len(mine)
        assert Decimal(str(row["amount"])) == sum(d.amount for d in mine)

    for row in rows("sources"):
        mine = [
            d for d in deals if d.lead_id and d.lead.source and d.lead.source.name == row["source"]
        ]
        if row["source"] is None:
            mine = [d for d in deals if d.lead_id and d.lead.source is None]
        n_leads = (
            Lead.objects.filter(source__name=row["source"]).count()
            if row["source"]
            else Lead.objects.filter(source=None).count()
        )
        assert (row["leads"], row["deals"]) == (n_leads, len(mine))
        assert row["won"] == len([d for d in mine if d.stage.kind == StageKind.WON])

    # stage time: every entry's stay (next entry or the clock), plus deals without history.
    stays: dict[str, list[float]] = {s.key: [] for s in open_stages}
    for d in deals:
        h = history(d)
        if not h and d.stage.kind == StageKind.OPEN and d.stage.key in stays:
            stays[d.stage.key].append(days_between(CLOCK, d.created_at))
        for c, nxt in zip(h, h[1:] + [None], strict=False):
            if (
                c.to_stage.key in stays
                and c.to_stage.pipeline.is_default
                and c.to_stage.kind == "open"
            ):
                stays[c.to_stage.key].append(days_between(nxt.at if nxt else CLOCK, c.at))
    for row in rows("stage-time", as_of=CLOCK):
        values = stays[row["stage"]]
        assert row["entered"] == len(values)
        assert (row["median_days"], row["p90_days"]) == (median(values), p90(values)), row["stage"]

    check_stuck_and_weekly(deals)

    forecast = rows("forecast")
    open_deals = [d for d in deals if d.stage.kind == StageKind.OPEN]
    assert sum(r["deals"] for r in forecast) == len(open_deals)
    expected_weighted = sum(d.amount * d.stage.probability / 100 for d in open_deals)
    assert abs(
        Decimal(str(sum(r["weighted_amount"] for r in forecast))) - expected_weighted
    ) <= Decimal("0.01") * len(forecast)


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_it_keeps_funnel_and_breakdown_invariants(db, seed):
    with transaction.atomic():
        owners = [UserFactory(username=f"rep{i}") for i in range(3)]
        generate(random.Random(seed), owners, n_deals=10)
        f = rows("funnel")
        counts = [r["count"] for r in f[1:]]
        # Funnel counts never increase down the steps (from deals on).
        assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
        for r in f:
            c = r["conversion_from_previous"]
            assert c is None or 0 <= c <= 1 or r["step"] == "deals"
        o = rows("owners")
        total = by(f, "step")["deals"]
        assert sum(r["deals"] for r in o) == total["count"]
        assert sum(r["won"] for r in o) == by(f, "step")["won"]["count"]
        for r in o:
            for k in ("win_rate", "close_rate"):
                assert r[k] is None or 0 <= r[k] <= 1
            assert r["won"] + r["lost"] + r["open"] == r["deals"]
        body = (
            __import__("tests.analytics.journeys", fromlist=["report"])
            .report("lost-reasons")
            .to_json()
        )
        lost_n = sum(r["deals"] for r in body["rows"])
        lost_amount = round(sum(r["amount"] for r in body["rows"]), 2)
        assert lost_n == sum(r["lost"] for r in o)
        for part in ("by_competitor", "by_industry", "by_stage", "matrix"):
            assert sum(x["deals"] for x in body[part]) == lost_n
            assert round(sum(x["amount"] for x in body[part]), 2) == lost_amount
        for r in rows("sources"):
            for k in ("win_rate", "lead_to_deal_rate"):
                assert r[k] is None or 0 <= r[k] <= 1 or r["leads"] == 0
        transaction.set_rollback(True)


def check_stuck_and_weekly(deals: list[Deal]) -> None:
    from leakmap.analytics.weekly import week_bounds

    expected = {}
    for d in deals:
        if d.stage.kind != StageKind.OPEN:
            continue
        h = history(d)
        entered = h[-1].at if h else d.created_at
        done = [a.done_at for a in d.activities.filter(done_at__isnull=False)]
        in_stage = days_between(CLOCK, entered)
        silent = days_between(CLOCK, max(done) if done else d.created_at)
        if d.stage.sla_days is not None and in_stage > d.stage.sla_days:
            expected[d.pk] = "over_sla"
        elif silent > 7:
            expected[d.pk] = "no_follow_up"
    assert {r["deal_id"]: r["reason"] for r in rows("stuck", as_of=CLOCK)} == expected

    # weekly as of day 30: the state at T from history, events bucketed by local Monday weeks
    t = day(30)
    weeks = week_bounds(t)
    got = by(rows("weekly", as_of=t), "metric")

    def in_week(x: dt.datetime, i: int) -> bool:
        start, end = weeks[i]
        return start <= x <= end if i == 0 else start <= x < end

    for i, col in ((0, "this_week"), (1, "last_week")):
        assert got["new_leads"][col] == sum(
            in_week(lead.created_at, i) for lead in Lead.objects.all()
        )
        assert got["deals_created"][col] == sum(in_week(d.created_at, i) for d in deals)
        won_amount = Decimal(0)
        entered_won = 0
        for d in deals:
            h = [c for c in history(d) if c.at <= t]
            if h and h[-1].to_stage.kind == StageKind.WON and in_week(h[-1].at, i):
                won_amount += d.amount
            # Without history the deal's current state counts from creation (CONTRACT §4).
            if not history(d) and d.stage.kind == StageKind.WON and in_week(d.closed_at, i):
                won_amount += d.amount
            entered_won += any(c.to_stage.kind == StageKind.WON and in_week(c.at, i) for c in h)
        assert Decimal(str(got["won_amount"][col])) == won_amount
        assert got["entered:won"][col] == entered_won
