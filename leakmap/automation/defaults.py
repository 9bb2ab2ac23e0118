"""The default workflow rules (issue 6), installed by a data migration: all on."""

from __future__ import annotations

DEFAULT_RULES = [
    # Deal without follow-up: tell the owner and flag it; after 7 more days, the manager. No
    # days of its own, so it fires when the deal turns silent by LEAKMAP_NO_FOLLOW_UP_DAYS, the
    # limit reports and Today use (crm.rules).
    {
        "key": "no_follow_up",
        "days": None,
        "escalate_after_days": 7,
        "notify_owner": True,
        "notify_manager": True,
        "send_email": True,
        "set_flag": True,
    },
    # Deal in a stage longer than the stage's SLA: owner and manager.
    {"key": "stage_sla", "notify_owner": True, "notify_manager": True, "send_email": True},
    # New lead not contacted within 24 hours: the owner; reassigning is opt-in.
    {
        "key": "lead_not_contacted",
        "hours": 24,
        "notify_owner": True,
        "send_email": True,
        "reassign": False,
    },
    # Next follow-up date passed without a follow-up: an overdue task for the owner.
    {"key": "overdue_follow_up", "notify_owner": True, "send_email": False, "create_task": True},
    # Daily digest for managers, from 08:00 local time.
    {
        "key": "manager_digest",
        "hours": 8,
        "notify_owner": False,
        "notify_manager": True,
        "send_email": True,
    },
]


def install_default_rules(apps) -> None:
    """Install the default rules if missing (idempotent); see crm.defaults.install_defaults."""
    Rule = apps.get_model("automation", "Rule")
    for spec in DEFAULT_RULES:
        spec = dict(spec)
        Rule.objects.get_or_create(key=spec.pop("key"), defaults=spec)
