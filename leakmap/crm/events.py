"""Domain events, sent by services after the transaction that caused them commits.

Webhooks, notifications and automation subscribe here instead of being called from services, so
a failing subscriber can never undo or block the user's action.
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

lead_created = Signal()  # kwargs: lead
lead_converted = Signal()  # kwargs: lead, deal
deal_created = Signal()  # kwargs: deal
deal_stage_changed = Signal()  # kwargs: deal, from_stage, to_stage, change
deal_won = Signal()  # kwargs: deal
deal_lost = Signal()  # kwargs: deal
activity_logged = Signal()  # kwargs: activity

ALL = {
    "lead.created": lead_created,
    "lead.converted": lead_converted,
    "deal.created": deal_created,
    "deal.stage_changed": deal_stage_changed,
    "deal.won": deal_won,
    "deal.lost": deal_lost,
    "activity.logged": activity_logged,
}


def emit(signal: Signal, **kwargs) -> None:
    """Send `signal` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: signal.send_robust(sender=None, **kwargs))
