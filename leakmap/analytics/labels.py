"""The words a reader sees for the keys of the report bodies: table titles, column headers,
stuck reasons, change directions, stage keys and usernames.

The report pages (web/views/reports.py) and the terminal tables (render.py) both take them from
here, so a key is named the same way wherever a user looks, in the reader's language. The JSON
and CSV bodies keep the contract's keys; only what is read on a screen goes through this module.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy, pgettext_lazy

# The contract's two win rates have different divisors; on a screen they never share a name,
# and the formula is one hover away (CONTRACT §4).
DEAL_WIN_RATE = gettext_lazy("Deal win rate")
DEAL_WIN_RATE_FORMULA = gettext_lazy("Won deals ÷ deals created in the period")
LEAD_WIN_RATE = gettext_lazy("Lead win rate")
LEAD_WIN_RATE_FORMULA = gettext_lazy("Won deals ÷ leads created in the period")
CLOSE_RATE_FORMULA = gettext_lazy("Won deals ÷ (won + lost deals)")
LEAD_TO_DEAL_RATE_FORMULA = gettext_lazy("Deals from these leads ÷ leads")

# Body keys that hold a breakdown table: their titles.
TABLE_TITLES = {
    "by_competitor": gettext_lazy("By competitor"),
    "by_industry": gettext_lazy("By industry"),
    "by_stage": gettext_lazy("By stage lost at"),
    "matrix": gettext_lazy("Leak map: stage lost at × reason"),
    "calibration": gettext_lazy("Stage probability against what happened"),
    "by_owner": gettext_lazy("By rep"),
    "top_lost_reasons": gettext_lazy("Top lost reasons of the week"),
}

# The `key` column of a {key, deals, amount} breakdown names a different thing in each table.
KEY_HEADERS = {
    "by_competitor": gettext_lazy("Competitor"),
    "by_industry": gettext_lazy("Industry"),
    "by_stage": gettext_lazy("Stage lost at"),
    "top_lost_reasons": gettext_lazy("Lost reason"),
}

COLUMN_LABELS = {
    "deals": gettext_lazy("Deals"),
    "amount": gettext_lazy("Amount"),
    "stage": gettext_lazy("Stage"),
    "reason": gettext_lazy("Lost reason"),
    "owner": gettext_lazy("Owner"),
    "leads_this_week": gettext_lazy("Leads (week)"),
    "leads_last_week": gettext_lazy("Leads (week before)"),
    "deals_this_week": gettext_lazy("Deals (week)"),
    "deals_last_week": gettext_lazy("Deals (week before)"),
    "won_amount_this_week": gettext_lazy("Won (week)"),
    "won_amount_last_week": gettext_lazy("Won (week before)"),
    "probability": gettext_lazy("Configured probability"),
    "closed": gettext_lazy("Closed deals"),
    "won": gettext_lazy("Won"),
    "historical_win_rate": gettext_lazy("Actual close rate"),
    "brier_score": gettext_lazy("Brier score"),
}

# Body keys printed as one line beside the tables (not as a table).
SCALAR_LABELS = {
    "brier_score": gettext_lazy("Brier score over every stage (0 is perfect)"),
    "no_follow_up_days": gettext_lazy("Days without a follow-up before a deal counts as silent"),
    "won_amount": gettext_lazy("Won amount"),
    "week": gettext_lazy("Week"),
}

STUCK_REASONS = {
    "over_sla": gettext_lazy("Over the stage's time limit"),
    "no_follow_up": gettext_lazy("No recent follow-up"),
}

DIRECTIONS = {"up": "▲", "down": "▼", "flat": "="}

# The diagnosis' leak points and severities (CONTRACT §5 codes).
CATEGORIES = {
    "lead_volume": gettext_lazy("Too few leads"),
    "lead_quality": gettext_lazy("Leads that do not convert"),
    "lead_conversion": gettext_lazy("Leads not turned into deals"),
    "follow_up": gettext_lazy("Deals going cold mid-funnel"),
    "negotiation": gettext_lazy("Deals dying in negotiation"),
    "channel_mix": gettext_lazy("Spend on channels that do not pay"),
}
SEVERITIES = {
    "high": gettext_lazy("High"),
    "medium": gettext_lazy("Medium"),
    "low": gettext_lazy("Low"),
}

# Weekly review columns: the reviewed week against the one before it and the four before it.
WEEK = gettext_lazy("Reviewed week")
WEEK_BEFORE = gettext_lazy("Week before")
AVERAGE_4W = gettext_lazy("4-week average")
CHANGE = pgettext_lazy("difference between two figures", "Change")

SCOPE_TYPES = {
    "owner": pgettext_lazy("scope of a finding", "Rep"),
    "source": gettext_lazy("Source"),
    "team": gettext_lazy("Team"),
    "period": gettext_lazy("Period"),
    "target": gettext_lazy("Revenue target"),
}
SCOPE_KEYS = {
    "current": gettext_lazy("this period"),
    "revenue_target": gettext_lazy("the revenue target"),
}

# The steps of a coaching sheet (analytics.diagnosis.COACHING_STEPS).
COACHING_STEPS = {
    "lead_to_deal": gettext_lazy("Lead → deal"),
    "deal_to_proposal": gettext_lazy("Deal → proposal"),
    "proposal_to_negotiation": gettext_lazy("Proposal → negotiation"),
    "negotiation_to_won": gettext_lazy("Negotiation → won"),
}


def rate_with_sample(rate: float | None, reached: int, base: int) -> str:
    """A rate with the counts it rests on: "35.0% (7/20)"; "–" without a base."""
    if rate is None or not base:
        return "–"
    return f"{rate * 100:.1f}% ({reached:,}/{base:,})"


# A Brier score read to three places is as precise as its sample allows.
SCORE_PLACES = 3


def kind_of(key: str) -> str:
    """How a breakdown column is formatted: money, rate, score, days, int or text."""
    if "amount" in key or key in ("spend", "cost_per_lead", "cost_per_won"):
        return "money"
    if key.endswith("rate") or key.endswith("share") or key == "probability":
        return "rate"
    if key == "brier_score":
        return "score"
    if key.endswith("days"):
        return "days"
    if key in ("deals", "won", "lost", "leads", "closed", "entered") or key.startswith(
        ("leads_", "deals_")
    ):
        return "int"
    return "text"


def column_label(table: str, key: str) -> str:
    if key == "key":
        return str(KEY_HEADERS.get(table, gettext_lazy("Name")))
    return str(COLUMN_LABELS.get(key, key))


def table_title(table: str) -> str:
    return str(TABLE_TITLES.get(table, table))


def display_names() -> dict[str, dict[str, str]]:
    """Stage labels by key and display names by username: the keys reports carry, as people
    read them."""
    from leakmap.accounts.models import User
    from leakmap.crm.models import Stage

    return {
        "stage": {s.key: s.label for s in Stage.objects.filter(pipeline__is_default=True)},
        "owner": {u.username: str(u) for u in User.objects.only("username", "display_name")},
    }


def display(report: str, key: str, value: Any, names: dict) -> Any:
    """One cell's value as a reader sees it: names for keys, labels for codes, a stage map keyed
    by stage labels, never a negative number of days since a follow-up."""
    if value is None:
        return None
    if key == "reached" and isinstance(value, dict):
        stages = names.get("stage", {})
        return {stages.get(k, k): v for k, v in value.items()}
    if key == "reason" and report == "stuck":
        return str(STUCK_REASONS.get(value, value))
    if report == "diagnosis" and key == "severity":
        return str(SEVERITIES.get(value, value))
    if report == "diagnosis" and key == "category":
        return str(CATEGORIES.get(value, value))
    if key == "direction":
        return DIRECTIONS.get(value, value)
    if key == "days_since_follow_up":
        # A follow-up logged a little ahead of the clock is a follow-up today.
        return max(0.0, float(value))
    if key in ("stage", "owner") and isinstance(value, str):
        return names.get(key, {}).get(value, value)
    return value


def scope_label(scope: dict, names: dict) -> str:
    """A finding's scope ({type, key}) in words: "Rep: 小王", "Source: 百度广告"."""
    kind, key = scope.get("type"), scope.get("key")
    if kind == "owner":
        key = names.get("owner", {}).get(key, key)
    return f"{SCOPE_TYPES.get(kind, kind)}: {SCOPE_KEYS.get(key, key)}"
