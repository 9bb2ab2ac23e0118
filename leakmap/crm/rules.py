"""Business rules, each defined once (CONTRACT §4): reports, Today, the deal board, the diagnosis
and the workflow rules import these instead of re-typing a comparison or a rate.

over SLA: an open deal whose time in its current stage is strictly longer than the stage's SLA,
  days > sla_days. A stage without an SLA (None) never makes a deal over it.
silent: an open deal with no done follow-up (since its creation when it has none) for strictly
  more than LEAKMAP_NO_FOLLOW_UP_DAYS days.

Each time rule comes as a Python predicate and as the cutoff it implies (the clock moved back by
the limit), so a query filters with `entered < cutoff` in the database, on an indexed column,
with no date arithmetic per row. `entered < now - limit` is the same test as
`now - entered > limit`, to the microsecond.

Rates are unrounded fractions in [0, 1], None where the divisor is 0 (nothing to rate).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q

DEFAULT_NO_FOLLOW_UP_DAYS = 7


# --- Over SLA --------------------------------------------------------------------------------


def sla_cutoff(now: dt.datetime, sla_days: int) -> dt.datetime:
    """A deal that entered its stage strictly before this moment is over the SLA at `now`."""
    return now - dt.timedelta(days=sla_days)


def is_over_sla(
    sla_days: int | None,
    *,
    days_in_stage: float | None = None,
    entered_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Over the SLA: in the stage strictly longer than `sla_days`. Give either the days in the
    stage (a float, as reports compute them) or the stage entry time and the clock."""
    if sla_days is None:
        return False
    if days_in_stage is not None:
        return days_in_stage > sla_days
    if entered_at is None or now is None:
        raise TypeError("is_over_sla needs days_in_stage, or entered_at and now")
    return entered_at < sla_cutoff(now, sla_days)


def over_sla_q(entered_field: str, now: dt.datetime, sla_days: int | None) -> Q:
    """The ORM condition for is_over_sla on a stage-entry column (one stage's SLA): callers
    combine it with that stage's id. Matches nothing for a stage without an SLA."""
    if sla_days is None:
        return Q(pk__in=[])
    return Q(**{f"{entered_field}__lt": sla_cutoff(now, sla_days)})


def within_sla_q(entered_field: str, now: dt.datetime, sla_days: int) -> Q:
    """The complement of over_sla_q for a stage with an SLA (entry time not null)."""
    return Q(**{f"{entered_field}__gte": sla_cutoff(now, sla_days)})


# --- Silent (no follow-up) -------------------------------------------------------------------


def no_follow_up_days(override: int | None = None) -> int:
    """The silent limit in days: `override` when given (a report's --no-follow-up-days, a
    workflow rule's own days), else settings.LEAKMAP_NO_FOLLOW_UP_DAYS."""
    if override:
        return override
    return getattr(settings, "LEAKMAP_NO_FOLLOW_UP_DAYS", DEFAULT_NO_FOLLOW_UP_DAYS)


def silent_cutoff(now: dt.datetime, days: int | None = None) -> dt.datetime:
    """A deal whose last done follow-up (else its creation) is strictly before this moment is
    silent at `now`."""
    return now - dt.timedelta(days=no_follow_up_days(days))


def is_silent(last_touch: dt.datetime, now: dt.datetime, days: int | None = None) -> bool:
    """Silent: `last_touch` (the last done follow-up, else the deal's creation) is strictly
    more than the limit before `now`."""
    return last_touch < silent_cutoff(now, days)


def silent_q(last_touch_field: str, now: dt.datetime, days: int | None = None) -> Q:
    """The ORM condition for is_silent on a column (or annotation) holding the last touch."""
    return Q(**{f"{last_touch_field}__lt": silent_cutoff(now, days)})


# --- Rates -----------------------------------------------------------------------------------


def _rate(num: int | float | None, den: int | float | None) -> float | None:
    if num is None or not den:
        return None
    return float(num) / float(den)


def win_rate(won: int, deals: int) -> float | None:
    """Deals won of the deals made (商机赢单率)."""
    return _rate(won, deals)


def close_rate(won: int, lost: int) -> float | None:
    """Deals won of the deals closed, won + lost."""
    return _rate(won, won + lost)


def lead_win_rate(won: int, leads: int) -> float | None:
    """Deals won of the leads they came from (线索赢单率; the sources report's win_rate)."""
    return _rate(won, leads)


def lead_to_deal_rate(deals: int, leads: int) -> float | None:
    """Deals made of the leads."""
    return _rate(deals, leads)


# --- First contact -----------------------------------------------------------------------------

# A lead first contacted within this long of its creation was contacted fast (the diagnosis'
# speed-to-lead check; crm.LeadTally.contacted_within_day keeps the same test in SQL).
FIRST_CONTACT_WITHIN = dt.timedelta(hours=24)


def first_contacted_fast_q(now: dt.datetime) -> Q:
    """Leads first contacted, by `now`, within FIRST_CONTACT_WITHIN of their creation. Needs the
    annotation first_contact_days = days from created_at to first_contacted_at
    (analytics.base.DaysBetween); the cheap tests come first so the day arithmetic only runs
    for contacted leads."""
    within_days = FIRST_CONTACT_WITHIN.total_seconds() / 86400
    return (
        Q(first_contacted_at__isnull=False)
        & Q(first_contacted_at__lte=now)
        & Q(first_contact_days__lt=within_days)
    )
