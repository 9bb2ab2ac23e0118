"""diagnosis: "where did the revenue go?" — the funnel's leaks, named with their evidence.

Intuition: gather a handful of counts per rep, per source and per period in SQL (reusing the
owners and sources reports, plus a few small GROUP BY queries of our own), then decide in plain
Python, on those counts only, which differences are real. Keeping the decision a pure function
of counts is what lets the null simulation (tests/analytics/test_diagnosis.py) run it on 200+
homogeneous teams and show that it stays quiet when nothing differs.

Rules of evidence
- Like with like: a rep against the rest of their team (everyone else when the team is only
  them), a source against the other sources, a period against the previous periods.
- Each candidate difference gets a p-value (Fisher's exact test for small counts, the pooled
  two-proportion z-test otherwise; an exact binomial/Poisson test for lead counts) and Holm's
  correction runs over every candidate of the run, so with no real differences the chance of
  even one finding stays at or under 5 %. Only differences in the bad direction become findings.
- revenue_at_stake is what closing the gap to the benchmark would have been worth:

      missing units  = (benchmark rate − subject rate) × subject's sample size
      revenue_at_stake = missing units × downstream win rate × average won amount

  where "downstream win rate" is the observed rate at which the missing units (deals, deals
  past the proposal, …) end up won across the whole scope, and "average won amount" is the mean
  amount of won deals in scope. For channel_mix it is the return of moving half of the source's
  spend to the best-returning source: shift × (return_best − return_source), with return = won
  amount / spend. For lead_volume it is the missing leads × lead→won rate × average won amount.
- severity from revenue_at_stake / won revenue: ≥ 10 % high, ≥ 3 % medium, else low.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Count
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from leakmap.accounts.models import User
from leakmap.analytics.base import (
    Column,
    ReportResult,
    deal_states,
    load_stages,
    money,
    owner_key,
    register,
)
from leakmap.analytics.counts import lead_cells, lost_cells
from leakmap.analytics.filters import ReportFilters, Scope, resolve
from leakmap.analytics.owners import owner_groups, reach_keys_of
from leakmap.analytics.owners import owner_rows as owner_rows_of
from leakmap.analytics.significance import holm, proportion_p_value
from leakmap.analytics.sources import leads_per_source
from leakmap.analytics.sources import sources as sources_report
from leakmap.analytics.stuck import over_sla_q
from leakmap.crm import rules
from leakmap.crm.models import (
    Lead,
    LeadStatus,
    LostReason,
    Source,
    StageKind,
)

ALPHA = 0.05
MIN_SAMPLE = 5  # below this a subject is not compared at all
MIN_CLOSED_FOR_ANY_FINDING = 20  # fewer closed deals in scope: say the data is too thin
CATEGORIES = (
    "lead_volume",
    "lead_quality",
    "lead_conversion",
    "follow_up",
    "negotiation",
    "channel_mix",
)


def _pct(rate: float) -> str:
    """A rate as the findings print it: 12.5%."""
    return f"{rate:.1%}"


# --- Input: counts only ------------------------------------------------------------------------


@dataclass
class RepCounts:
    owner: str
    name: str
    team: str | None
    leads: int = 0
    converted: int = 0  # leads turned into deals
    contacted_fast: int = 0  # leads first contacted within 24 h
    deals: int = 0
    reached_proposal: int = 0
    reached_negotiation: int = 0
    closed_after_negotiation: int = 0  # won + lost among deals that reached negotiation
    won: int = 0
    won_amount: Decimal = Decimal(0)
    follow_ups_per_deal: float | None = None
    stuck_over_sla: int = 0
    lost_reasons: list[tuple[str, int, int, int]] = field(default_factory=list)
    # (reason, deals, with notes, with competitor) lost at negotiation or later


@dataclass
class SourceCounts:
    source: str
    leads: int
    deals: int
    won: int
    disqualified: int
    won_amount: Decimal
    spend: Decimal | None
    # True when `spend` is the scope's allocated share of the source's spend (a team, a rep, a
    # manager's view: sources.allocated), so a proposal moves only that share.
    spend_allocated: bool = False


@dataclass
class PeriodCounts:
    current_leads: int
    current_days: float
    previous_leads: int
    previous_days: float


@dataclass
class DiagnosisInput:
    reps: list[RepCounts]
    sources: list[SourceCounts]
    period: PeriodCounts | None
    won: int
    won_amount: Decimal
    deals: int
    leads: int
    closed: int
    deals_reaching_negotiation_won_rate: float | None  # P(won | reached negotiation, closed)
    # Deal -> won as the contract's win_rate, won / deals: the downstream rate at which a deal
    # (made or missing) ends up won, the same figure wherever the diagnosis prices a deal.
    deal_won_rate: float | None
    target_leads: float | None = None  # leads needed in the current period to hit the target
    # Username of who reads the findings: a rep reading their own is addressed as "you",
    # anyone else reads the rep's name (None: the CLI, a reader who is no rep of the scope).
    viewer: str | None = None


@dataclass
class Finding:
    category: str
    scope: dict
    severity: str
    metric: str
    value: float
    benchmark: float
    sample_size: int
    revenue_at_stake: Decimal
    summary: str
    actions: list[str]


@dataclass
class _Candidate:
    category: str
    scope: dict
    metric: str
    value: float
    benchmark: float
    sample_size: int
    p_value: float
    revenue: float
    summary: str
    actions: list[str]
    key: str  # the comparison behind it; one test per comparison in the Holm family


# --- Exact tests on counts -----------------------------------------------------------------------


def _binom_two_sided(x: int, n: int, p: float) -> float:
    """Exact two-sided binomial test (minimum-likelihood), as R's binom.test."""
    if n == 0:
        return 1.0
    if p <= 0 or p >= 1:
        return 1.0 if (p <= 0 and x == 0) or (p >= 1 and x == n) else 0.0

    # The same operations in the same order as written out in full, with the constants
    # taken out of the loop: bit for bit the same floats, in half the time.
    log_n, log_p, log_q, lgamma = math.lgamma(n + 1), math.log(p), math.log1p(-p), math.lgamma

    def logpmf(k: int) -> float:
        return log_n - lgamma(k + 1) - lgamma(n - k + 1) + k * log_p + (n - k) * log_q

    observed = logpmf(x) + 1e-7
    # Only the k whose probability is not 0.0 in floating point can add to the sum: log-pmf
    # below UNDERFLOW_LOG makes exp() exactly 0.0. The pmf rises to its mode and falls after,
    # so those k are one interval around the mode, found by bisection; summing it in the same
    # ascending order gives the very same float as summing all n + 1 terms. (For the period
    # test n is every lead of two periods: the interval is a small part of n + 1 terms.)
    mode = min(n, int((n + 1) * p))

    def above(k: int) -> bool:  # False, then True, up to the mode
        return logpmf(k) >= UNDERFLOW_LOG

    first = bisect_left(range(mode + 1), True, key=above)
    last = mode + bisect_left(range(mode, n + 1), True, key=lambda k: not above(k)) - 1
    # The terms no likelier than the observed count are the two tails of that interval: the
    # rise up to `rise` and the fall from `fall` on, found by bisection too. Summing just
    # them, in the same ascending order, gives the same float without computing the middle
    # (a count far from expected, the case that matters, has short tails).
    rise = first + bisect_left(range(first, mode + 1), True, key=lambda k: logpmf(k) > observed)
    fall = mode + bisect_left(range(mode, last + 1), True, key=lambda k: logpmf(k) <= observed)
    tails = itertools.chain(range(first, rise), range(max(fall, rise), last + 1))
    return min(1.0, sum(math.exp(logpmf(k)) for k in tails))


# exp(x) is exactly 0.0 for x below about -745.13; a margin keeps bisection noise harmless.
UNDERFLOW_LOG = -800.0


def _poisson_lower_tail(x: int, lam: float) -> float:
    """P(X ≤ x) for X ~ Poisson(lam)."""
    if lam <= 0:
        return 1.0
    term = math.exp(-lam)
    total = term
    for k in range(1, x + 1):
        term *= lam / k
        total += term
    return min(1.0, total)


def _rate(x: int, n: int) -> float:
    return x / n if n else 0.0


# --- Decision: pure function of the counts -------------------------------------------------------


def diagnose(inp: DiagnosisInput, alpha: float = ALPHA) -> tuple[list[Finding], list[str]]:
    """The findings the counts support, ordered by revenue at stake, and notes for the reader."""
    notes: list[str] = []
    if inp.closed < MIN_CLOSED_FOR_ANY_FINDING:
        notes.append(
            _(
                "Only %(closed)s closed deals: too few to tell leaks from chance "
                "(at least %(needed)s needed)."
            )
            % {"closed": inp.closed, "needed": MIN_CLOSED_FOR_ANY_FINDING}
        )
        return [], notes

    avg_won = float(inp.won_amount) / inp.won if inp.won else 0.0
    candidates: list[_Candidate] = []
    candidates += _lead_volume(inp, avg_won)
    candidates += _lead_quality_and_channels(inp, avg_won)
    candidates += _rep_checks(inp, avg_won)

    # Holm over one p-value per distinct comparison.
    keys = sorted({c.key for c in candidates})
    p_by_key = {c.key: c.p_value for c in candidates}
    rejected = dict(zip(keys, holm([p_by_key[k] for k in keys], alpha), strict=True))
    won_revenue = float(inp.won_amount)
    findings = []
    for c in candidates:
        if not rejected[c.key] or c.revenue <= 0:
            continue
        share = c.revenue / won_revenue if won_revenue else 1.0
        severity = "high" if share >= 0.10 else "medium" if share >= 0.03 else "low"
        findings.append(
            Finding(
                category=c.category,
                scope=c.scope,
                severity=severity,
                metric=c.metric,
                value=c.value,
                benchmark=c.benchmark,
                sample_size=c.sample_size,
                revenue_at_stake=Decimal(c.revenue).quantize(Decimal("0.01")),
                summary=c.summary,
                actions=c.actions,
            )
        )
    # One finding per leak point and subject: the check with the most at stake speaks for it.
    strongest: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.category, f.scope["type"], f.scope["key"])
        if key not in strongest or f.revenue_at_stake > strongest[key].revenue_at_stake:
            strongest[key] = f
    findings = sorted(
        strongest.values(), key=lambda f: (-f.revenue_at_stake, f.category, f.scope["key"])
    )
    if not findings:
        notes.append(
            _(
                "No leak stands out: the differences between reps, sources and periods are "
                "within what chance alone would produce."
            )
        )
    return findings, notes


def _lead_volume(inp: DiagnosisInput, avg_won: float) -> list[_Candidate]:
    out = []
    per = inp.period
    lead_won = rules.lead_win_rate(inp.won, inp.leads) or 0.0
    if per and per.previous_leads + per.current_leads >= 2 * MIN_SAMPLE and per.previous_days > 0:
        share = per.current_days / (per.current_days + per.previous_days)
        expected = (per.current_leads + per.previous_leads) * share
        if per.current_leads < expected:
            p = _binom_two_sided(per.current_leads, per.current_leads + per.previous_leads, share)
            missing = expected - per.current_leads
            out.append(
                _Candidate(
                    "lead_volume",
                    {"type": "period", "key": "current"},
                    "leads",
                    per.current_leads,
                    round(expected, 2),
                    per.current_leads + per.previous_leads,
                    p,
                    missing * lead_won * avg_won,
                    _(
                        "%(leads)s new leads this period against about %(expected)s at the "
                        "pace of the previous periods: the top of the funnel shrank."
                    )
                    % {"leads": per.current_leads, "expected": f"{expected:.0f}"},
                    ACTIONS["lead_volume"](),
                    "lead_volume:period",
                )
            )
    if per and inp.target_leads and per.current_leads < inp.target_leads:
        p = _poisson_lower_tail(per.current_leads, inp.target_leads)
        missing = inp.target_leads - per.current_leads
        out.append(
            _Candidate(
                "lead_volume",
                {"type": "target", "key": "revenue_target"},
                "leads",
                per.current_leads,
                round(inp.target_leads, 2),
                per.current_leads,
                p,
                missing * lead_won * avg_won,
                _(
                    "Reaching the revenue target at current conversion needs about "
                    "%(needed)s leads this period; there were %(leads)s."
                )
                % {"needed": f"{inp.target_leads:.0f}", "leads": per.current_leads},
                ACTIONS["lead_volume"](),
                "lead_volume:target",
            )
        )
    return out


def _lead_quality_and_channels(inp: DiagnosisInput, avg_won: float) -> list[_Candidate]:
    out = []
    total_leads = sum(s.leads for s in inp.sources)
    total_deals = sum(s.deals for s in inp.sources)
    total_won = sum(s.won for s in inp.sources)
    total_disq = sum(s.disqualified for s in inp.sources)
    deal_won = rules.win_rate(total_won, total_deals) or 0.0
    returns = {
        s.source: float(s.won_amount) / float(s.spend)
        for s in inp.sources
        if s.spend and s.spend > 0
    }
    # Where a budget could go: a source that already takes a real share of the spend (10 %), so
    # a tiny budget with a lucky return (referrals on a few hundred yuan) is not assumed to scale.
    total_spend = sum(float(s.spend) for s in inp.sources if s.spend)
    destinations = {
        s.source: returns[s.source]
        for s in inp.sources
        if s.source in returns and float(s.spend) >= 0.10 * total_spend
    }
    for s in inp.sources:
        rest_leads = total_leads - s.leads
        if s.leads < MIN_SAMPLE or rest_leads < MIN_SAMPLE:
            continue
        scope = {"type": "source", "key": s.source}
        # Lead → won against the other sources: the quality that reaches revenue.
        rest_won = total_won - s.won
        # Both sides have MIN_SAMPLE leads or more: the rates are never None here.
        rate = rules.lead_win_rate(s.won, s.leads) or 0.0
        bench = rules.lead_win_rate(rest_won, rest_leads) or 0.0
        key_won = f"source_won:{s.source}"
        p_won = proportion_p_value(s.won, s.leads, rest_won, rest_leads)
        if rate < bench:
            out.append(
                _Candidate(
                    "lead_quality",
                    scope,
                    "lead_to_won_rate",
                    rate,
                    bench,
                    s.leads,
                    p_won,
                    (bench - rate) * s.leads * avg_won,
                    _(
                        "Leads from %(source)s win %(rate)s (lead win rate) against %(bench)s "
                        "for the other sources: many leads that do not convert."
                    )
                    % {"source": s.source, "rate": _pct(rate), "bench": _pct(bench)},
                    ACTIONS["lead_quality"](),
                    key_won,
                )
            )
        # Lead → deal, when it is the earlier step that fails.
        rest_deals = total_deals - s.deals
        rate_d = rules.lead_to_deal_rate(s.deals, s.leads) or 0.0
        bench_d = rules.lead_to_deal_rate(rest_deals, rest_leads) or 0.0
        if rate_d < bench_d:
            out.append(
                _Candidate(
                    "lead_quality",
                    scope,
                    "lead_to_deal_rate",
                    rate_d,
                    bench_d,
                    s.leads,
                    proportion_p_value(s.deals, s.leads, rest_deals, rest_leads),
                    (bench_d - rate_d) * s.leads * deal_won * avg_won,
                    _(
                        "Only %(rate)s of %(source)s leads became deals, against %(bench)s for "
                        "the other sources."
                    )
                    % {"source": s.source, "rate": _pct(rate_d), "bench": _pct(bench_d)},
                    ACTIONS["lead_quality"](),
                    f"source_deal:{s.source}",
                )
            )
        # Share disqualified, higher is worse.
        rest_disq = total_disq - s.disqualified
        rate_q, bench_q = _rate(s.disqualified, s.leads), _rate(rest_disq, rest_leads)
        if rate_q > bench_q:
            out.append(
                _Candidate(
                    "lead_quality",
                    scope,
                    "disqualified_share",
                    rate_q,
                    bench_q,
                    s.leads,
                    proportion_p_value(s.disqualified, s.leads, rest_disq, rest_leads),
                    (rate_q - bench_q)
                    * s.leads
                    * (rules.lead_to_deal_rate(total_deals, total_leads) or 0.0)
                    * deal_won
                    * avg_won,
                    _(
                        "%(rate)s of %(source)s leads were disqualified, against %(bench)s elsewhere."
                    )
                    % {"source": s.source, "rate": _pct(rate_q), "bench": _pct(bench_q)},
                    ACTIONS["lead_quality"](),
                    f"source_disq:{s.source}",
                )
            )
        # Money: a paid source whose leads win less than the rest, beside a better-returning one.
        if s.source in returns and destinations and rate < bench:
            best = max(destinations, key=lambda k: (destinations[k], k))
            if best != s.source and returns[best] > returns[s.source]:
                shift = float(s.spend) / 2
                gain = shift * (returns[best] - returns[s.source])
                cpw = float(s.spend) / s.won if s.won else None
                out.append(
                    _Candidate(
                        "channel_mix",
                        scope,
                        "return_on_spend",
                        returns[s.source],
                        returns[best],
                        s.leads,
                        p_won,
                        gain,
                        _channel_mix_summary(s, cpw, returns, best, shift, gain),
                        ACTIONS["channel_mix"](best),
                        key_won,
                    )
                )
    return out


def _channel_mix_summary(
    s: SourceCounts, cpw: float | None, returns: dict, best: str, shift: float, gain: float
) -> str:
    figures = {
        "source": s.source,
        "spend": f"{float(s.spend):,.0f}",
        "per_won": f"{cpw:,.0f}" if cpw else "",
        "return": f"{returns[s.source]:.2f}",
        "best": best,
        "best_return": f"{returns[best]:.2f}",
        "shift": f"{shift:,.0f}",
        "gain": f"{gain:,.0f}",
    }
    if s.spend_allocated:
        spent = _("%(source)s's allocated spend was %(spend)s") % figures
    else:
        spent = _("%(source)s cost %(spend)s") % figures
    per_won = _("%(per_won)s per won deal") % figures if cpw else _("no won deal")
    return _(
        "%(spent)s (%(per_won_text)s) and returned %(return)s per 1 spent; %(best)s "
        "returned %(best_return)s. Moving half the budget (%(shift)s) to %(best)s would win "
        "about %(gain)s more at current returns."
    ) % {**figures, "spent": spent, "per_won_text": per_won}


def _best_peer(rep: RepCounts, peers: list[RepCounts]) -> RepCounts | None:
    """The peer who follows up most per deal, when that is more than the rep and rests on at
    least MIN_SAMPLE deals; None when no such peer exists (a rep is never shown a "best" peer
    who does worse, or one with two deals)."""
    mine = rep.follow_ups_per_deal
    best = max(
        (
            p
            for p in peers
            if p.follow_ups_per_deal is not None
            and p.deals >= MIN_SAMPLE
            and (mine is None or p.follow_ups_per_deal > mine)
        ),
        key=lambda p: (p.follow_ups_per_deal, p.owner),
        default=None,
    )
    return best


def _peers(inp: DiagnosisInput) -> Callable[[RepCounts], list[RepCounts]]:
    """peers(rep): the rest of the rep's team; everyone else when the team is only them. The
    teams are sorted out once (asked per rep of 250, the lists cost 250² comparisons)."""
    teams: dict[str, list[RepCounts]] = {}
    for r in inp.reps:
        if r.team is not None:
            teams.setdefault(r.team, []).append(r)

    def peers(rep: RepCounts) -> list[RepCounts]:
        team = [r for r in teams.get(rep.team, []) if r is not rep] if rep.team is not None else []
        return team or [r for r in inp.reps if r is not rep]

    return peers


def _rep_checks(inp: DiagnosisInput, avg_won: float) -> list[_Candidate]:
    out = []
    peers_of = _peers(inp)
    for rep in inp.reps:
        peers = peers_of(rep)
        if not peers:
            continue
        scope = {"type": "owner", "key": rep.owner}

        def compare(x, n, px, pn):
            return _rate(x, n), _rate(px, pn), proportion_p_value(x, n, px, pn)

        # lead_conversion: leads turned into deals.
        pl, pc = sum(p.leads for p in peers), sum(p.converted for p in peers)
        if rep.leads >= MIN_SAMPLE and pl >= MIN_SAMPLE:
            rate, bench, p = compare(rep.converted, rep.leads, pc, pl)
            if rate < bench:
                out.append(
                    _Candidate(
                        "lead_conversion",
                        scope,
                        "lead_to_deal_rate",
                        rate,
                        bench,
                        rep.leads,
                        p,
                        (bench - rate) * rep.leads * (inp.deal_won_rate or 0) * avg_won,
                        _(
                            "%(name)s turned %(rate)s of leads into deals against %(bench)s for "
                            "the rest of the team: leads are being hoarded."
                        )
                        % {"name": rep.name, "rate": _pct(rate), "bench": _pct(bench)},
                        ACTIONS["lead_conversion"](),
                        f"rep_l2d:{rep.owner}",
                    )
                )
            pf = sum(p.contacted_fast for p in peers)
            rate, bench, p = compare(rep.contacted_fast, rep.leads, pf, pl)
            if rate < bench:
                out.append(
                    _Candidate(
                        "lead_conversion",
                        scope,
                        "first_contact_within_24h",
                        rate,
                        bench,
                        rep.leads,
                        p,
                        (bench - rate)
                        * rep.leads
                        * (rules.lead_to_deal_rate(inp.deals, inp.leads) or 0.0)
                        * (inp.deal_won_rate or 0)
                        * avg_won,
                        _(
                            "%(name)s contacted %(rate)s of new leads within 24 hours, against "
                            "%(bench)s for the rest of the team."
                        )
                        % {"name": rep.name, "rate": _pct(rate), "bench": _pct(bench)},
                        ACTIONS["lead_conversion"](),
                        f"rep_fast:{rep.owner}",
                    )
                )
        # follow_up: out of the proposal stages into negotiation.
        pp, pn = sum(p.reached_proposal for p in peers), sum(p.reached_negotiation for p in peers)
        if rep.reached_proposal >= MIN_SAMPLE and pp >= MIN_SAMPLE:
            rate, bench, p = compare(rep.reached_negotiation, rep.reached_proposal, pn, pp)
            if rate < bench:
                best = _best_peer(rep, peers)
                figures = {
                    "name": rep.name,
                    "rate": _pct(rate),
                    "bench": _pct(bench),
                    "mine": f"{rep.follow_ups_per_deal or 0.0:.1f}",
                    "peer": best.name if best else "",
                    "theirs": f"{best.follow_ups_per_deal:.1f}" if best else "",
                    "stuck": rep.stuck_over_sla,
                }
                summary = (
                    _(
                        "After the proposal only %(rate)s of %(name)s's deals reach negotiation, "
                        "against %(bench)s for the rest of the team: deals go cold in the middle."
                    )
                    % figures
                )
                if best is not None and rep.owner == inp.viewer:
                    summary += (
                        _(" You follow up %(mine)s times per deal; %(peer)s does %(theirs)s.")
                        % figures
                    )
                elif best is not None:
                    summary += (
                        _(" %(name)s follows up %(mine)s times per deal; %(peer)s does %(theirs)s.")
                        % figures
                    )
                if rep.stuck_over_sla:
                    summary += (
                        _(" %(stuck)s open deals are over their stage's time limit.") % figures
                    )
                out.append(
                    _Candidate(
                        "follow_up",
                        scope,
                        "proposal_to_negotiation_rate",
                        rate,
                        bench,
                        rep.reached_proposal,
                        p,
                        (bench - rate)
                        * rep.reached_proposal
                        * (inp.deals_reaching_negotiation_won_rate or 0)
                        * avg_won,
                        summary,
                        ACTIONS["follow_up"](),
                        f"rep_p2n:{rep.owner}",
                    )
                )
        # negotiation: of the closed deals that reached negotiation, how many were won.
        pcl, pw = (
            sum(p.closed_after_negotiation for p in peers),
            sum(p.won for p in peers),
        )
        if rep.closed_after_negotiation >= MIN_SAMPLE and pcl >= MIN_SAMPLE:
            rate, bench, p = compare(rep.won, rep.closed_after_negotiation, pw, pcl)
            if rate < bench:
                top = rep.lost_reasons[:3]
                reasons = _(", ").join(
                    _("%(reason)s (%(deals)s, %(notes)s with notes)")
                    % {"reason": r, "deals": n, "notes": notes}
                    for r, n, notes, _c in top
                )
                with_rival = sum(c for _r, _n, _no, c in rep.lost_reasons)
                lost_total = sum(n for _r, n, _no, _c in rep.lost_reasons)
                figures = {
                    "name": rep.name,
                    "rate": _pct(rate),
                    "bench": _pct(bench),
                    "reasons": reasons,
                    "rival": with_rival,
                    "lost": lost_total,
                }
                summary = (
                    _(
                        "%(name)s wins %(rate)s of deals that reach negotiation, against "
                        "%(bench)s for the rest of the team."
                    )
                    % figures
                )
                if top:
                    summary += (
                        _(
                            " Top lost reasons: %(reasons)s; %(rival)s of %(lost)s lost to a "
                            "competitor."
                        )
                        % figures
                    )
                out.append(
                    _Candidate(
                        "negotiation",
                        scope,
                        "negotiation_to_won_rate",
                        rate,
                        bench,
                        rep.closed_after_negotiation,
                        p,
                        (bench - rate) * rep.closed_after_negotiation * avg_won,
                        summary,
                        ACTIONS["negotiation"](),
                        f"rep_n2w:{rep.owner}",
                    )
                )
    return out


ACTIONS = {
    "lead_volume": lambda: [
        _("Invest in more lead generation, starting with the best-returning channels."),
        _("Start a referral reward for existing customers, the best leads there are."),
        _("Add content and events (WeChat articles, trade shows, webinars) to the lead mix."),
    ],
    "lead_quality": lambda: [
        _("Tighten this channel's targeting and form fields to filter out low-intent leads."),
        _("Write lead qualification rules (budget, need, decision maker) and disqualify early."),
        _("Move budget from low-quality to high-quality channels."),
    ],
    "lead_conversion": lambda: [
        _(
            "Contact every new lead within 24 hours: turn on assignment and first-contact reminders."
        ),
        _("Improve the first-call script and the qualification checklist."),
        _("No records, no new leads: pause assignment for reps with overdue follow-ups."),
    ],
    "follow_up": lambda: [
        _("Give every deal a next follow-up date and a reminder after 7 days without one."),
        _("Set a standard follow-up cadence after the proposal (e.g. days 2, 5 and 10)."),
        _("Alert the manager when a deal overstays its stage."),
    ],
    "negotiation": lambda: [
        _("Negotiation coaching with a review of the lost deals."),
        _("Build a competitor comparison playbook; sell value, not price."),
        _("Allow more flexible pricing and require the reason and competitor on every loss."),
    ],
    "channel_mix": lambda best: [
        _("Move half of this channel's budget to %(best)s.") % {"best": best},
        _("Judge channels by cost per won deal, not by lead count."),
        _("Review channel spend against won revenue every month."),
    ],
}


METRIC_LABELS = {
    "leads": gettext_lazy("New leads"),
    "lead_to_won_rate": gettext_lazy("Lead win rate"),
    "lead_to_deal_rate": gettext_lazy("Lead to deal rate"),
    "disqualified_share": gettext_lazy("Share disqualified"),
    "return_on_spend": gettext_lazy("Won amount per 1 spent"),
    "first_contact_within_24h": gettext_lazy("First contact within 24 h"),
    "proposal_to_negotiation_rate": gettext_lazy("Proposal to negotiation rate"),
    "negotiation_to_won_rate": gettext_lazy("Negotiation to won rate"),
}


def metric_label(metric: str) -> str:
    """A finding's metric in the reader's language (the key itself stays in the JSON)."""
    return str(METRIC_LABELS.get(metric, metric))


# --- Counts from the database --------------------------------------------------------------------


def _periods(scope: Scope) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(previous start, current start, current end): the cohort period when both dates are
    given, else the 28 days up to the clock; the previous window is three times as long."""
    if scope.start is not None and scope.end is not None:
        start, end = scope.start, min(scope.end, scope.now)
    else:
        end = scope.now
        start = end - dt.timedelta(days=28)
    length = end - start
    return start - 3 * length, start, end


def collect(scope: Scope) -> DiagnosisInput:
    """The counts the decision needs: the owners report's groups and the sources report, plus
    per-rep lead counts, stuck deals, lost reasons at negotiation and lead counts per period.
    For every lead and deal now the lead and deal tallies the database keeps (crm.LeadTally,
    crm.DealTally) and index ranges answer them, not a scan of every record; other scopes take
    one GROUP BY each (tests/analytics/test_diagnosis_paths.py holds both equal)."""
    stages = load_stages()
    order = {s.key: s.order for s in stages.open}
    neg_order = order.get("negotiation", max(order.values(), default=0))
    reps: dict[str, RepCounts] = {}

    # The owners report's groups: its rows, and the deals closed after reaching negotiation.
    groups = owner_groups(scope, stages)
    owner_rows = owner_rows_of(groups, stages)
    neg_step = next(
        (i for i, (_key, o) in enumerate(reach_keys_of(stages)) if o == neg_order), None
    )
    # Group by owner id (no join, no index detour) and name the few owners in one small query.
    people = {
        pk: (username, display or username, team)
        for pk, username, display, team in User.objects.values_list(
            "pk", "username", "display_name", "team__name"
        )
    }
    team_of = {username: team for username, _n, team in people.values()}
    for r in owner_rows:
        reps[r.owner] = RepCounts(
            owner=r.owner,
            name=r.owner_name,
            team=team_of.get(r.owner),
            deals=r.deals,
            reached_proposal=r.reached.get("proposal", 0),
            reached_negotiation=r.reached.get("negotiation", 0),
            won=r.won,
            won_amount=r.won_amount,
            follow_ups_per_deal=r.avg_follow_ups_per_deal,
        )

    lead_rows = _rep_lead_counts(scope)
    for g in lead_rows:
        if g["o"] is None or g["o"] not in people:
            continue
        username, name, team = people[g["o"]]
        rep = reps.setdefault(username, RepCounts(username, name, team))
        rep.leads, rep.converted, rep.contacted_fast = g["leads"], g["converted"], g["fast"]

    closed_neg_total = 0
    for g in groups:
        rep = reps.get(people.get(g.owner_id, ("",))[0])
        closed_neg = g.closed_after[neg_step] if neg_step is not None else 0
        closed_neg_total += closed_neg
        if rep is not None:
            rep.closed_after_negotiation = closed_neg
    for owner_id, n in _stuck_per_owner(scope, stages):
        rep = reps.get(people.get(owner_id, ("",))[0])
        if rep is not None:
            rep.stuck_over_sla = n

    reason_name = dict(LostReason.objects.values_list("pk", "name"))
    lost_rows = [
        (owner_id, reason_name.get(reason_id) or "—", n, notes, rival)
        for owner_id, reason_id, n, notes, rival in _lost_after(scope, stages, neg_order)
    ]
    lost_rows.sort(key=lambda g: (-g[2], g[1]))
    for owner_id, reason, n, notes, rival in lost_rows:
        rep = reps.get(people.get(owner_id, ("",))[0])
        if rep is not None:
            rep.lost_reasons.append((reason, n, notes, rival))

    # Sources: the report's rows plus disqualified counts.
    source_name = dict(Source.objects.values_list("pk", "name"))
    disq = {
        source_name.get(source_id): n
        for source_id, n in leads_per_source(scope, LeadStatus.DISQUALIFIED)
    }
    # For a narrowed scope the report's spend is already the scope's allocated share.
    source_result = sources_report(scope)
    allocated = source_result.extra.get("spend_basis") == "allocated"
    sources = [
        SourceCounts(
            source=r.source or "—",
            leads=r.leads,
            deals=r.deals,
            won=r.won,
            disqualified=disq.get(r.source, 0),
            won_amount=r.won_amount,
            spend=r.spend,
            spend_allocated=allocated,
        )
        for r in source_result.rows
    ]

    # Periods: leads created in the current window against the three before it.
    prev_start, cur_start, cur_end = _periods(scope)
    base = Lead.objects.filter(
        scope.lead_q() if scope.start is None else _without_period(scope).lead_q()
    ).order_by()
    # Three range counts rather than one scan with three filters: each reads only its part
    # of a created_at index.
    counts = {
        "cur": base.filter(created_at__gte=cur_start, created_at__lt=cur_end).count(),
        "prev": base.filter(created_at__gte=prev_start, created_at__lt=cur_start).count(),
        "first": int(base.filter(created_at__lt=prev_start).exists()),
    }
    earliest = (
        base.filter(created_at__gte=prev_start, created_at__lt=cur_start)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    prev_days = (cur_start - prev_start).total_seconds() / 86400
    if counts["first"] == 0 and earliest is not None:
        # History starts inside the previous window: compare against the part that exists.
        prev_days = (cur_start - earliest).total_seconds() / 86400
    period = PeriodCounts(
        current_leads=counts["cur"],
        current_days=(cur_end - cur_start).total_seconds() / 86400,
        previous_leads=counts["prev"] if earliest is not None else 0,
        previous_days=prev_days if earliest is not None else 0.0,
    )

    # The scope's totals are the per-owner groups summed (every deal has an owner): no
    # further scan of the deals.
    totals = {
        "deals": sum(r.deals for r in owner_rows),
        "won": sum(r.won for r in owner_rows),
        "closed": sum(r.won + r.lost for r in owner_rows),
        "closed_neg": closed_neg_total,
    }
    won_amount = sum((r.won_amount for r in reps.values()), Decimal(0))
    n_leads = sum(s.leads for s in sources)
    target = _target_leads(period, totals["won"], won_amount, n_leads)
    return DiagnosisInput(
        reps=sorted(reps.values(), key=lambda r: r.owner),
        sources=sources,
        period=period,
        won=totals["won"],
        won_amount=won_amount,
        deals=totals["deals"],
        leads=n_leads,
        closed=totals["closed"],
        deals_reaching_negotiation_won_rate=(totals["won"] / totals["closed_neg"])
        if totals["closed_neg"]
        else None,
        deal_won_rate=rules.win_rate(totals["won"], totals["deals"]),
        target_leads=target,
        viewer=scope.filters.viewer.username if scope.filters.viewer is not None else None,
    )


def _stuck_per_owner(scope: Scope, stages) -> list[tuple[int | None, int]]:
    """(owner id, open deals in their stage longer than its SLA): the stuck report's rule."""
    return list(
        deal_states(scope, stages, kind=StageKind.OPEN)
        .filter(over_sla_q(stages, scope.now))
        .annotate(o=owner_key())
        .values("o")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("o", "n")
    )


def _lost_after(scope: Scope, stages, order: int) -> list[tuple]:
    """(owner id, lost reason id, deals, with notes, with a competitor) of the deals lost after
    reaching the stage of `order`."""
    return [
        (c.owner_id, c.reason_id, c.n, c.with_notes, c.with_competitor)
        for c in lost_cells(scope, stages, reached_at_least=order)
    ]


def _rep_lead_counts(scope: Scope) -> list[dict]:
    """Per owner id: leads, converted by the clock, first contacted fast (by the clock)."""
    return [
        {"o": c.owner_id, "leads": c.n, "converted": c.converted, "fast": c.contacted_fast}
        for c in lead_cells(scope, by=("owner",), conversions=True)
    ]


def _without_period(scope: Scope) -> Scope:
    """The same scope over all time, so the previous periods can be counted."""
    from dataclasses import replace

    return replace(scope, filters=replace(scope.filters, date_from=None, date_to=None))


def _target_leads(period: PeriodCounts, won: int, won_amount: Decimal, leads: int) -> float | None:
    """Leads the current period needs to reach LEAKMAP_MONTHLY_REVENUE_TARGET (prorated to the
    period's length) at the observed lead→won rate and average won amount."""
    target = getattr(settings, "LEAKMAP_MONTHLY_REVENUE_TARGET", None)
    if not target or not won or not leads:
        return None
    per_lead = rules.lead_win_rate(won, leads) * float(won_amount) / won
    return float(target) * (period.current_days / 30.0) / per_lead


# --- The report ----------------------------------------------------------------------------------


# The steps of a coaching sheet, in funnel order; their names for a reader are in
# analytics.labels.COACHING_STEPS.
COACHING_STEPS = (
    "lead_to_deal",
    "deal_to_proposal",
    "proposal_to_negotiation",
    "negotiation_to_won",
)


@dataclass
class CoachingStage:
    stage: str  # one of COACHING_STEPS
    rate: float | None
    team_rate: float | None
    # The counts behind the two rates: `reached` of `base`, so a reader sees the sample.
    reached: int = 0
    base: int = 0
    team_reached: int = 0
    team_base: int = 0


@dataclass
class CoachingSheet:
    owner: str
    name: str
    leads: int
    deals: int
    won: int
    stages: list[CoachingStage]
    follow_ups_per_deal: float | None
    # The peer who follows up most per deal, only when more than the rep and over at least
    # MIN_SAMPLE deals (None: no such peer, and the sheet says so).
    best_peer: str | None
    best_peer_follow_ups_per_deal: float | None
    top_lost_reasons: list[dict]
    best_peer_deals: int | None = None


def coaching(inp: DiagnosisInput) -> list[CoachingSheet]:
    """Per rep, for one-on-ones: the rep's share of deals reaching each step beside the rest of
    the team's, with the counts behind both; follow-ups per deal beside the best peer's (see
    _best_peer); top lost reasons with notes."""
    sheets = []
    peers_of = _peers(inp)
    for rep in inp.reps:
        peers = peers_of(rep)

        # reached counts per stage are not kept per key on RepCounts beyond the two the checks
        # use, so the sheet shows lead→deal, deal→proposal, proposal→negotiation, negotiation→won.
        def peer(attr: str, peers: list[RepCounts] = peers) -> int:
            return sum(getattr(p, attr) for p in peers)

        counts = [
            ((rep.converted, rep.leads), (peer("converted"), peer("leads"))),
            ((rep.reached_proposal, rep.deals), (peer("reached_proposal"), peer("deals"))),
            (
                (rep.reached_negotiation, rep.reached_proposal),
                (peer("reached_negotiation"), peer("reached_proposal")),
            ),
            (
                (rep.won, rep.closed_after_negotiation),
                (peer("won"), peer("closed_after_negotiation")),
            ),
        ]
        best = _best_peer(rep, peers)
        sheets.append(
            CoachingSheet(
                owner=rep.owner,
                name=rep.name,
                leads=rep.leads,
                deals=rep.deals,
                won=rep.won,
                stages=[
                    CoachingStage(
                        step,
                        x / n if n else None,
                        px / pn if pn else None,
                        reached=x,
                        base=n,
                        team_reached=px,
                        team_base=pn,
                    )
                    for step, ((x, n), (px, pn)) in zip(COACHING_STEPS, counts, strict=True)
                ],
                follow_ups_per_deal=rep.follow_ups_per_deal,
                best_peer=best.name if best else None,
                best_peer_follow_ups_per_deal=best.follow_ups_per_deal if best else None,
                best_peer_deals=best.deals if best else None,
                top_lost_reasons=[
                    {"reason": r, "deals": n, "with_notes": notes, "with_competitor": c}
                    for r, n, notes, c in rep.lost_reasons[:3]
                ],
            )
        )
    return sheets


@register("diagnosis")
def diagnosis(scope: Scope) -> ReportResult:
    inp = collect(scope)
    findings, notes = diagnose(inp)
    won_amount = money(inp.won_amount)
    return ReportResult(
        report="diagnosis",
        as_of=scope.now,
        period=scope.period_json(),
        rows=findings,
        extra={
            # No total of revenue at stake: findings overlap (a poor source is both a quality
            # and a channel-mix leak), so their sum would count the same money twice.
            "won_amount": won_amount,
            "notes": notes,
            "coaching": coaching(inp),
        },
        title=_("Where did the revenue go?"),
        columns=[
            Column("severity", _("Severity")),
            Column("category", _("Leak point")),
            Column("summary", _("Finding")),
            Column("sample_size", _("Sample"), "int"),
            Column("revenue_at_stake", _("Revenue at stake"), "money"),
        ],
    )


def diagnosis_summary(filters: ReportFilters | None = None, limit: int = 3) -> list[str]:
    """The top findings as lines of text (for `leakmap demo` and e-mails)."""
    result = diagnosis(resolve(filters or ReportFilters()))
    from leakmap.analytics.labels import SEVERITIES

    lines = [
        f"[{SEVERITIES.get(f.severity, f.severity)}] {f.summary} (¥{f.revenue_at_stake:,.0f})"
        for f in result.rows[:limit]
    ]
    return lines or list(result.extra["notes"])
