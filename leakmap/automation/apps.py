from __future__ import annotations

import logging
import os

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

DEFAULT_RULES_INTERVAL = 300  # seconds


def rules_interval() -> int:
    """LEAKMAP_RULES_INTERVAL seconds between background rule runs; 0 turns them off."""
    value = os.environ.get("LEAKMAP_RULES_INTERVAL", "")
    if value == "":
        return DEFAULT_RULES_INTERVAL
    try:
        seconds = int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"LEAKMAP_RULES_INTERVAL={value!r}: expected a whole number of seconds"
        ) from exc
    if seconds < 0:
        raise ImproperlyConfigured(f"LEAKMAP_RULES_INTERVAL={value!r}: cannot be negative")
    return seconds


def run_rules_job() -> None:
    """The background run: never waits for the lock (another server is already doing it)."""
    from leakmap.automation.rules import run_rules

    result = run_rules(wait=False)
    if result.skipped:
        log.info("rules: another run holds the lock; skipped")
        return
    for firing in result.firings:
        log.info(
            "rules: %s %s#%s %s", firing.rule, firing.record_type, firing.record_id, firing.summary
        )


def register_jobs() -> bool:
    from leakmap.config.jobs import register_periodic

    interval = rules_interval()
    if interval == 0:
        return False
    register_periodic("rules", interval, run_rules_job)
    return True


class AutomationConfig(AppConfig):
    name = "leakmap.automation"
    label = "automation"

    def ready(self) -> None:
        # No subscriber to lead.created: a new lead's owner is decided by the intake service
        # (crm.services.lead_create), once; events only notify.
        register_jobs()
