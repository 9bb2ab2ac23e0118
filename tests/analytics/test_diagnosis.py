"""The diagnosis: planted leaks are found with the right category and scope, homogeneous teams
produce (almost) no findings, thin data produces none and says so."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.utils import translation

from leakmap.analytics import ReportFilters, run_report
from leakmap.analytics.diagnosis import (
    DiagnosisInput,
    PeriodCounts,
    RepCounts,
    SourceCounts,
    diagnose,
)
from leakmap.crm import services
from tests.factories import (
    T0,
    CompetitorFactory,
    SourceFactory,
    UserFactory,
    days,
    lost_reason,
    make_deal,
    stage,
)

AMOUNT = Decimal("10000")


def binom(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def simulate(
    rng: random.Random,
    *,
    reps: int = 6,
    leads_per_rep: int = 150,
    sources: int = 6,
    rep_overrides: dict[int, dict] | None = None,
    source_overrides: dict[int, dict] | None = None,
    current_rate: float = 1.0,
) -> DiagnosisInput:
    """A team drawn from one set of probabilities, except where an override plants a leak."""
    base = {"convert": 0.3, "fast": 0.6, "proposal": 0.5, "negotiation": 0.5, "win": 0.4}
    rep_rows = []
    for i in range(reps):
        p = {**base, **(rep_overrides or {}).get(i, {})}
        leads = leads_per_rep
        converted = binom(rng, leads, p["convert"])
        reached_prop = binom(rng, converted, p["proposal"])
        reached_neg = binom(rng, reached_prop, p["negotiation"])
        won = binom(rng, reached_neg, p["win"])
        rep_rows.append(
            RepCounts(
                owner=f"rep{i}",
                name=f"Rep {i}",
                team="A" if i < reps // 2 else "B",
                leads=leads,
                converted=converted,
                contacted_fast=binom(rng, leads, p["fast"]),
                deals=converted,
                reached_proposal=reached_prop,
                reached_negotiation=reached_neg,
                closed_after_negotiation=reached_neg,
                won=won,
                won_amount=AMOUNT * won,
                follow_ups_per_deal=4.0,
                lost_reasons=[("价格过高", reached_neg - won, 0, 0)],
            )
        )
    total_leads = reps * leads_per_rep
    per_source = total_leads // sources
    source_rows = []
    for j in range(sources):
        q = {"convert": 0.3, "win": 0.1, "disq": 0.1, **(source_overrides or {}).get(j, {})}
        deals = binom(rng, per_source, q["convert"])
        won = binom(rng, deals, q["win"] / q["convert"])
        source_rows.append(
            SourceCounts(
                source=f"source{j}",
                leads=per_source,
                deals=deals,
                won=won,
                disqualified=binom(rng, per_source, q["disq"]),
                won_amount=AMOUNT * won,
                spend=Decimal(q.get("spend", 60000)),
            )
        )
    per_day = total_leads / 180
    # Poisson counts of leads in the last 28 days and the 84 before, the current one scaled.
    current = binom(rng, 10 * int(per_day * 28), current_rate / 10)
    previous = binom(rng, 10 * int(per_day * 84), 1 / 10)
    won = sum(r.won for r in rep_rows)
    closed_neg = sum(r.closed_after_negotiation for r in rep_rows)
    deals = sum(r.deals for r in rep_rows)
    return DiagnosisInput(
        reps=rep_rows,
        sources=source_rows,
        period=PeriodCounts(current, 28.0, previous, 84.0),
        won=won,
        won_amount=AMOUNT * won,
        deals=deals,
        leads=total_leads,
        closed=deals,
        deals_reaching_negotiation_won_rate=won / closed_neg if closed_neg else None,
        deal_won_rate=won / deals if deals else None,
    )


def test_it_stays_quiet_on_homogeneous_teams():
    """The null simulation: 300 teams with no real differences; at most 5 % may show any finding."""
    rng = random.Random(20261127)
    teams = 300
    with_findings = sum(bool(diagnose(simulate(rng))[0]) for _ in range(teams))
    assert with_findings / teams <= 0.05, (
        f"{with_findings} of {teams} homogeneous teams had findings"
    )


@pytest.mark.parametrize(
    ("category", "scope", "kwargs"),
    [
        (
            "follow_up",
            {"type": "owner", "key": "rep2"},
            {"rep_overrides": {2: {"negotiation": 0.15}}},
        ),
        ("negotiation", {"type": "owner", "key": "rep1"}, {"rep_overrides": {1: {"win": 0.05}}}),
        (
            "lead_conversion",
            {"type": "owner", "key": "rep4"},
            {"rep_overrides": {4: {"convert": 0.12}}},
        ),
        (
            "lead_quality",
            {"type": "source", "key": "source0"},
            {"source_overrides": {0: {"win": 0.01, "convert": 0.1}}},
        ),
        (
            "channel_mix",
            {"type": "source", "key": "source0"},
            {"source_overrides": {0: {"win": 0.01, "convert": 0.1, "spend": 200000}}},
        ),
        ("lead_volume", {"type": "period", "key": "current"}, {"current_rate": 0.5}),
    ],
)
def test_it_finds_a_planted_leak(category, scope, kwargs):
    rng = random.Random(11)
    findings, _notes = diagnose(simulate(rng, leads_per_rep=400, **kwargs))
    found = [(f.category, f.scope) for f in findings]
    assert (category, scope) in found, found
    finding = next(f for f in findings if (f.category, f.scope) == (category, scope))
    assert finding.revenue_at_stake > 0
    assert finding.sample_size > 0
    assert finding.severity in ("high", "medium", "low")
    assert finding.actions
    # Only the planted subject is named (no collateral findings on the others).
    assert all(
        f.scope == scope or f.category == "lead_volume" for f in findings if f.category == category
    )


def test_it_orders_findings_by_revenue_at_stake():
    rng = random.Random(5)
    findings, _ = diagnose(
        simulate(
            rng,
            leads_per_rep=400,
            rep_overrides={1: {"win": 0.05}, 2: {"negotiation": 0.15}},
        )
    )
    amounts = [f.revenue_at_stake for f in findings]
    assert len(findings) >= 2
    assert amounts == sorted(amounts, reverse=True)


def test_it_says_so_when_there_is_too_little_data():
    with translation.override("en"):
        findings, notes = diagnose(simulate(random.Random(3), reps=2, leads_per_rep=20, sources=2))
    assert findings == []
    assert len(notes) == 1 and "too few to tell leaks from chance" in notes[0]


def test_the_revenue_at_stake_follows_the_stated_formula():
    """negotiation: (benchmark − rate) × closed deals that reached negotiation × average won."""
    inp = simulate(random.Random(11), leads_per_rep=400, rep_overrides={1: {"win": 0.05}})
    findings, _ = diagnose(inp)
    f = next(f for f in findings if f.category == "negotiation")
    rep = next(r for r in inp.reps if r.owner == "rep1")
    peers = [r for r in inp.reps if r.team == rep.team and r is not rep]
    bench = sum(p.won for p in peers) / sum(p.closed_after_negotiation for p in peers)
    rate = rep.won / rep.closed_after_negotiation
    avg_won = float(inp.won_amount) / inp.won
    expected = (bench - rate) * rep.closed_after_negotiation * avg_won
    assert f.value == pytest.approx(rate)
    assert f.benchmark == pytest.approx(bench)
    assert float(f.revenue_at_stake) == pytest.approx(expected, abs=0.01)


# --- End to end on the database -----------------------------------------------------------------


def _team_with_a_weak_negotiator(rep, teammate, manager):
    """Three reps, 40 deals each reaching negotiation; alice wins 4, the others 24."""
    third = UserFactory(username="carol", team=rep.team, manager=manager)
    referral = SourceFactory(name="老客户转介绍")
    rival = CompetitorFactory(name="竞品A")
    for owner, wins in ((rep, 4), (teammate, 24), (third, 24)):
        for i in range(40):
            deal = make_deal(
                owner=owner, amount=10000, source=referral, created_at=T0 + days(i % 20)
            )
            services.deal_move(
                deal=deal, stage=stage("negotiation"), by=owner, at=deal.created_at + days(5)
            )
            if i < wins:
                services.deal_close_won(deal=deal, by=owner, at=deal.created_at + days(9))
            else:
                services.deal_close_lost(
                    deal=deal,
                    lost_reason=lost_reason("被竞争对手拿下" if i % 2 else "价格过高"),
                    competitor=rival if i % 2 else None,
                    notes="客户嫌贵" if i % 4 == 0 else "",
                    by=owner,
                    at=deal.created_at + days(9),
                )
    return third


def test_it_names_the_weak_negotiator_from_the_database(rep, teammate, manager):
    _team_with_a_weak_negotiator(rep, teammate, manager)
    with translation.override("en"):
        body = run_report("diagnosis", ReportFilters()).to_json()
    negotiation = [f for f in body["rows"] if f["category"] == "negotiation"]
    assert [f["scope"] for f in negotiation] == [{"type": "owner", "key": "alice"}]
    f = negotiation[0]
    assert f["value"] == pytest.approx(4 / 40)
    assert f["benchmark"] == pytest.approx(48 / 80)
    assert f["sample_size"] == 40
    # (0.6 − 0.1) × 40 closed deals × 10,000 average won amount
    assert f["revenue_at_stake"] == pytest.approx(200000.0)
    assert set(f) == {
        "category",
        "scope",
        "severity",
        "metric",
        "value",
        "benchmark",
        "sample_size",
        "revenue_at_stake",
        "summary",
        "actions",
    }
    assert "competitor" in f["summary"]
    sheet = next(s for s in body["coaching"] if s["owner"] == "alice")
    assert sheet["won"] == 4
    assert sheet["top_lost_reasons"][0]["deals"] == 18


def test_a_rep_viewer_sees_only_their_own_diagnosis(rep, teammate, manager):
    _team_with_a_weak_negotiator(rep, teammate, manager)
    body = run_report("diagnosis", ReportFilters(viewer=teammate)).to_json()
    assert {s["owner"] for s in body["coaching"]} == {"bob"}
    assert all(f["scope"].get("key") != "alice" for f in body["rows"])


def test_it_reports_thin_data_from_the_database(rep):
    make_deal(owner=rep)
    body = run_report("diagnosis", ReportFilters()).to_json()
    assert body["rows"] == []
    assert body["notes"]


def test_the_demo_summary_lists_findings(rep, teammate, manager):
    from leakmap.analytics.diagnosis import diagnosis_summary

    _team_with_a_weak_negotiator(rep, teammate, manager)
    lines = diagnosis_summary()
    assert lines and any("Alice" in line or "alice" in line for line in lines)


def test_it_turns_a_revenue_target_into_the_leads_needed(settings):
    """Leads needed = monthly target × (period days / 30) ÷ (lead→won rate × average won)."""
    from leakmap.analytics.diagnosis import _target_leads

    settings.LEAKMAP_MONTHLY_REVENUE_TARGET = 3_000_000
    period = PeriodCounts(
        current_leads=100, current_days=30.0, previous_leads=300, previous_days=90.0
    )
    # 1,000 leads, 30 won worth 300,000: 300 per lead, so 3,000,000 needs 10,000 leads.
    assert _target_leads(period, 30, Decimal("300000"), 1000) == pytest.approx(10_000)
    settings.LEAKMAP_MONTHLY_REVENUE_TARGET = None
    assert _target_leads(period, 30, Decimal("300000"), 1000) is None

    inp = simulate(random.Random(2), leads_per_rep=400)
    inp.target_leads = inp.period.current_leads * 3
    findings, _ = diagnose(inp)
    target = [f for f in findings if f.scope == {"type": "target", "key": "revenue_target"}]
    assert len(target) == 1
    assert target[0].benchmark == pytest.approx(inp.period.current_leads * 3)


def test_the_table_says_why_there_is_no_finding(rep):
    import io

    from django.core.management import call_command

    make_deal(owner=rep)
    out = io.StringIO()
    with translation.override("en"):
        call_command("report", "diagnosis", "--format", "table", stdout=out)
    assert "too few to tell leaks from chance" in out.getvalue()


def test_every_metric_has_a_label_in_both_languages():
    from leakmap.analytics.diagnosis import METRIC_LABELS, metric_label

    findings, _ = diagnose(
        simulate(
            random.Random(11),
            leads_per_rep=400,
            rep_overrides={1: {"win": 0.05}, 2: {"negotiation": 0.15}, 4: {"convert": 0.12}},
            source_overrides={0: {"win": 0.01, "convert": 0.1, "spend": 200000}},
            current_rate=0.5,
        )
    )
    assert {f.metric for f in findings} <= set(METRIC_LABELS)
    with translation.override("en"):
        assert metric_label("negotiation_to_won_rate") == "Negotiation to won rate"
    with translation.override("zh-hans"):
        assert metric_label("negotiation_to_won_rate") == "谈判→赢单转化率"
