"""sources: per lead source — leads, the deals made from them, won, rates, won amount, spend.

Intuition: the cohort is leads created in the period. Three GROUP BY source queries: leads; deals
whose lead is one of those leads (grouped by the lead's source, so a deal counts where its lead
came from — Deal.lead_source, kept by the services, when no filter needs the leads themselves;
deals without a lead are not attributed to a channel); and spend of the months the
period touches (all months without a period, none after --as-of). Then per source
(CONTRACT §4): win_rate = won / leads, lead_to_deal_rate = deals / leads, cost_per_lead =
spend / leads, cost_per_won = spend / won (null where spend or the divisor is 0).

Spend is entered for the whole company. A narrowed scope (--owner, --team, or a viewer who
does not see everyone: a manager's team, a rep's own records) gets each source's spend
allocated by its share of that source's leads in the period (CONTRACT §4): spend × scope
leads / company leads, to the cent (ROUND_HALF_UP). The company's leads are counted with the
same period, clock and source filter, without the narrowing to people. Where the company has
no lead of a source in the period, a narrowed scope's share of it is 0, so its allocated spend
is 0.00. The body says which it is: "spend_basis": "allocated" or "entered".
Queries: stages, source names, leads, deals, spend (and the company's leads when allocated).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from leakmap.analytics import labels
from leakmap.analytics.base import (
    CENT,
    MONEY_FIELD,
    ZERO,
    Column,
    ReportResult,
    load_stages,
    money,
    money_ratio,
    register,
)
from leakmap.analytics.counts import deals_per_source, lead_cells
from leakmap.analytics.filters import Scope, local_tz
from leakmap.crm import rules
from leakmap.crm.models import Source, Spend


@dataclass
class SourceRow:
    source: str | None
    leads: int
    deals: int
    won: int
    win_rate: float | None
    lead_to_deal_rate: float | None
    won_amount: Decimal
    spend: Decimal | None
    cost_per_lead: Decimal | None
    cost_per_won: Decimal | None


def spend_q(scope: Scope) -> Q:
    """Spend rows of the months the period touches (first-of-month dates)."""
    f = scope.filters
    q = Q()
    if f.date_from:
        q &= Q(month__gte=f.date_from.replace(day=1))
    if f.date_to:
        q &= Q(month__lte=f.date_to)
    if scope.historical:
        q &= Q(month__lte=scope.now.astimezone(local_tz()).date())
    if scope.source_id is not None:
        q &= Q(source_id=scope.source_id)
    return q


def narrowed(scope: Scope) -> bool:
    """True when the scope is narrowed to some people (an owner, a team, or a viewer who may
    not see every record); an admin's view without --owner/--team is the company scope."""
    return scope.owner_id is not None or scope.team_id is not None or bool(scope.visible_q())


def company_scope(scope: Scope) -> Scope:
    """The same period, clock and source, without the narrowing to people."""
    return dataclasses.replace(
        scope,
        owner_id=None,
        team_id=None,
        viewer_team=None,
        filters=dataclasses.replace(scope.filters, viewer=None, owner=None, team=None),
    )


def allocated(spend: Decimal, scope_leads: int, company_leads: int) -> Decimal:
    """The scope's part of a source's spend: spend × its share of the source's leads. No
    company lead of the source in the period: the share, and so the allocated spend, is 0."""
    if not company_leads:
        return ZERO
    return (Decimal(spend) * scope_leads / company_leads).quantize(CENT, rounding=ROUND_HALF_UP)


def spend_per_source(scope: Scope) -> dict[int, Decimal]:
    """Source id -> spend of the months the period touches, as entered (one GROUP BY)."""
    return {
        source_id: amount
        for source_id, amount in Spend.objects.filter(spend_q(scope))
        .order_by()
        .values("source_id")
        .annotate(amount=Sum("amount", output_field=MONEY_FIELD))
        .values_list("source_id", "amount")
    }


def leads_per_source(scope: Scope, status: str | None = None) -> list[tuple[int | None, int]]:
    """(source id, cohort leads), of one status if given (the diagnosis' disqualified leads);
    sources whose leads have all moved on are left out."""
    return [(c.source_id, c.n) for c in lead_cells(scope, by=("source",), status=status)]


@register("sources")
def sources(scope: Scope) -> ReportResult:
    stages = load_stages()
    # Grouped by source id (no join to the source table, so no sort by name over every lead);
    # the few names come in one small query.
    name = dict(Source.objects.values_list("pk", "name"))
    scope_leads = dict(leads_per_source(scope))
    leads = {name.get(source_id): n for source_id, n in scope_leads.items()}
    deals = {
        name.get(source_id): {"n": n, "won": n_won, "won_amount": won_amount}
        for source_id, n, n_won, won_amount in deals_per_source(scope, stages)
        if n
    }
    spend_by_id = spend_per_source(scope)
    is_allocated = narrowed(scope)
    if is_allocated and spend_by_id:
        # The company's leads per source in the same period: the denominators of the shares.
        company_leads = dict(leads_per_source(company_scope(scope)))
        spend_by_id = {
            source_id: allocated(
                amount, scope_leads.get(source_id, 0), company_leads.get(source_id, 0)
            )
            for source_id, amount in spend_by_id.items()
        }
    spend = {name.get(source_id): amount for source_id, amount in spend_by_id.items()}
    names = set(leads) | set(deals) | set(spend)
    rows = []
    for name in names:
        n_leads = leads.get(name, 0)
        d = deals.get(name, {"n": 0, "won": 0, "won_amount": 0})
        sp = money(spend[name]) if name in spend else None
        rows.append(
            SourceRow(
                source=name,
                leads=n_leads,
                deals=d["n"],
                won=d["won"],
                win_rate=rules.lead_win_rate(d["won"], n_leads),
                lead_to_deal_rate=rules.lead_to_deal_rate(d["n"], n_leads),
                won_amount=money(d["won_amount"]),
                spend=sp,
                cost_per_lead=money_ratio(sp, n_leads) if sp else None,
                cost_per_won=money_ratio(sp, d["won"]) if sp else None,
            )
        )
    rows.sort(key=lambda r: (-r.leads, r.source or ""))
    return ReportResult(
        report="sources",
        as_of=scope.now,
        period=scope.period_json(),
        rows=rows,
        extra={"spend_basis": "allocated" if is_allocated else "entered"},
        title=_("Lead sources"),
        columns=[
            Column("source", _("Source")),
            Column("leads", _("Leads"), "int", total=True),
            Column("deals", _("Deals"), "int", total=True),
            Column("won", _("Won"), "int", total=True),
            Column(
                "win_rate",
                str(labels.LEAD_WIN_RATE),
                "rate",
                hint=str(labels.LEAD_WIN_RATE_FORMULA),
            ),
            Column(
                "lead_to_deal_rate",
                _("Lead to deal rate"),
                "rate",
                hint=str(labels.LEAD_TO_DEAL_RATE_FORMULA),
            ),
            Column("won_amount", _("Won amount"), "money", total=True),
            Column(
                "spend", _("Spend (allocated)") if is_allocated else _("Spend"), "money", total=True
            ),
            Column("cost_per_lead", _("Cost per lead"), "money"),
            Column("cost_per_won", _("Cost per won deal"), "money"),
        ],
    )
