"""Writes of the automation app: notifications and the marks on them; the workflow and
assignment rules as the settings pages change them."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.automation.models import AssignmentRule, Notification, Rule, RuleKey
from leakmap.automation.notifications import email_text, send_email_on_commit


def notification_create(
    *,
    recipient: User,
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    email: bool = False,
    at: dt.datetime | None = None,
) -> Notification:
    """An in-app notification, and the same text by e-mail when asked and the user has an
    address. `url` is a site path; the mail carries it as an absolute link.

    One INSERT, so no transaction of its own: a rules run creates thousands inside its firings'
    savepoints, and a nested savepoint each would double their round trips. The mail waits
    for the caller's commit either way."""
    notification = Notification.objects.create(
        recipient=recipient,
        kind=kind,
        title=title[:200],
        body=body,
        url=url[:300],
        created_at=at or timezone.now(),
    )
    if email and recipient.email:
        send_email_on_commit(
            to=recipient.email, subject=title, text=email_text(title=title, body=body, url=url)
        )
    return notification


def notification_mark_read(*, notification: Notification, at: dt.datetime | None = None) -> bool:
    """Mark one as read; returns False when it already was (the first read time is kept)."""
    return bool(
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=at or timezone.now()
        )
    )


def notifications_mark_all_read(
    *, user: User, kind: str | None = None, at: dt.datetime | None = None
) -> int:
    """Mark the user's unread notifications read (only those of `kind` when given); returns
    how many. Nobody else's are touched."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if kind is not None:
        unread = unread.filter(kind=kind)
    return unread.update(read_at=at or timezone.now())


# --- Settings: workflow rules and assignment rules -------------------------------------------

# What each rule reads (automation.rules): the settings page offers these and nothing else,
# and a save leaves the other columns as they were.
RULE_SETTINGS: dict[str, tuple[str, ...]] = {
    RuleKey.NO_FOLLOW_UP: (
        "days",
        "escalate_after_days",
        "notify_owner",
        "notify_manager",
        "send_email",
        "set_flag",
    ),
    RuleKey.STAGE_SLA: ("notify_owner", "notify_manager", "send_email", "set_flag"),
    RuleKey.LEAD_NOT_CONTACTED: (
        "hours",
        "notify_owner",
        "notify_manager",
        "send_email",
        "reassign",
    ),
    RuleKey.OVERDUE_FOLLOW_UP: (
        "notify_owner",
        "notify_manager",
        "send_email",
        "set_flag",
        "create_task",
    ),
    RuleKey.MANAGER_DIGEST: ("hours", "send_email"),
}
# The settings that make a firing do something; the digest always notifies its managers.
RULE_ACTIONS = ("notify_owner", "notify_manager", "set_flag", "create_task", "reassign")
LIMITS = {"days": (1, 365), "escalate_after_days": (0, 365), "hours": (1, 720)}
DIGEST_HOURS = (0, 23)


@transaction.atomic
def rule_create(*, key: str) -> Rule:
    """Install a workflow rule whose row is missing, with its default settings. What a rule
    watches is code (automation.rules), so there is exactly one row per key."""
    from leakmap.automation.defaults import DEFAULT_RULES

    if key not in RuleKey.values:
        raise ValidationError({"key": _("Unknown workflow rule.")})
    if Rule.objects.filter(key=key).exists():
        raise ValidationError({"key": _("This workflow rule is already installed.")})
    spec = dict(next(s for s in DEFAULT_RULES if s["key"] == key))
    return Rule.objects.create(**spec)


@transaction.atomic
def rule_update(*, rule: Rule, is_active: bool, **settings) -> Rule:
    """Switch a workflow rule on or off and set what it reads; the engine picks the change up
    at its next run."""
    allowed = RULE_SETTINGS[rule.key]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValidationError(_("Not a setting of this rule: %(f)s.") % {"f": ", ".join(unknown)})
    errors: dict[str, str] = {}
    for field, value in settings.items():
        if field not in LIMITS or value is None:
            continue
        low, high = LIMITS[field]
        if field == "hours" and rule.key == RuleKey.MANAGER_DIGEST:
            low, high = DIGEST_HOURS
        if not low <= value <= high:
            errors[field] = _("Enter a whole number from %(low)d to %(high)d.") % {
                "low": low,
                "high": high,
            }
    if rule.key == RuleKey.NO_FOLLOW_UP and settings.get("notify_manager"):
        if settings.get("escalate_after_days") is None:
            errors["escalate_after_days"] = _(
                "The manager is told after these further days: enter them, or untick "
                "“notify the manager”."
            )
    actions = [f for f in RULE_ACTIONS if f in allowed]
    if is_active and actions and not any(settings.get(f) for f in actions):
        errors["__all__"] = _("Choose at least one action, or switch the rule off.")
    if errors:
        raise ValidationError(errors)
    rule.is_active = is_active
    for field, value in settings.items():
        setattr(rule, field, value)
    rule.save()
    return rule


@transaction.atomic
def rule_set_active(*, rule: Rule, is_active: bool) -> Rule:
    rule.is_active = is_active
    rule.save(update_fields=["is_active"])
    return rule


@transaction.atomic
def assignment_rule_save(
    *,
    name: str,
    team,
    sequence: int,
    is_active: bool = True,
    source=None,
    industry=None,
    region: str = "",
    daily_cap: int | None = None,
    gate_max_open_issues: int | None = None,
    instance: AssignmentRule | None = None,
) -> AssignmentRule:
    """Create or change an assignment rule. Rules are tried in sequence order; the first that
    matches a lead and has a rep under the cap and through the gate gets it."""
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = _("A name is required.")
    else:
        clash = AssignmentRule.objects.filter(name=name)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            errors["name"] = _("An assignment rule called “%(n)s” already exists.") % {"n": name}
    if team is None:
        errors["team"] = _("Choose the team whose reps receive the leads.")
    if sequence is None or not 0 <= sequence <= 10000:
        errors["sequence"] = _("Enter a whole number from %(low)d to %(high)d.") % {
            "low": 0,
            "high": 10000,
        }
    if daily_cap is not None and not 1 <= daily_cap <= 10000:
        errors["daily_cap"] = _(
            "A daily cap is at least 1 lead per rep; leave it empty for no cap."
        )
    if gate_max_open_issues is not None and not 0 <= gate_max_open_issues <= 10000:
        errors["gate_max_open_issues"] = _(
            "Enter how many open issues a rep may have (0 or more); leave it empty to switch "
            "the gate off."
        )
    if errors:
        raise ValidationError(errors)
    rule = instance or AssignmentRule()
    rule.name = name
    rule.team = team
    rule.sequence = sequence
    rule.is_active = is_active
    rule.source = source
    rule.industry = industry
    rule.region = (region or "").strip()
    rule.daily_cap = daily_cap
    rule.gate_max_open_issues = gate_max_open_issues
    rule.full_clean()
    rule.save()
    return rule


@transaction.atomic
def assignment_rule_set_active(*, rule: AssignmentRule, is_active: bool) -> AssignmentRule:
    rule.is_active = is_active
    rule.save(update_fields=["is_active"])
    return rule
