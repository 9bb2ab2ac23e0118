"""Workflow rules, the ledger that makes them fire exactly once, lead assignment, notifications.

Admins edit `Rule` and `AssignmentRule` rows on the settings pages (through
`automation.services`); the rule engine (`rules.py`) reads them on every run, so a change takes
effect at the next run without a restart.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class RuleKey(models.TextChoices):
    NO_FOLLOW_UP = "no_follow_up", _("Deal without follow-up")
    STAGE_SLA = "stage_sla", _("Deal over its stage's SLA")
    LEAD_NOT_CONTACTED = "lead_not_contacted", _("New lead not contacted")
    OVERDUE_FOLLOW_UP = "overdue_follow_up", _("Next follow-up date passed")
    MANAGER_DIGEST = "manager_digest", _("Daily digest for managers")


class Rule(models.Model):
    """One workflow rule. What it watches is fixed by `key`; thresholds and actions are editable.

    Actions that make no sense for a rule (a task for a new lead, say) are ignored by it; the
    admin's help texts say which rule reads which field.
    """

    key = models.CharField(_("rule"), max_length=32, choices=RuleKey.choices, unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    days = models.PositiveIntegerField(
        _("days"),
        null=True,
        blank=True,
        help_text=_("Deal without follow-up: days without a follow-up before the owner is told."),
    )
    escalate_after_days = models.PositiveIntegerField(
        _("escalate after further days"),
        null=True,
        blank=True,
        help_text=_(
            "Deal without follow-up: further days after which the manager is told as well "
            "(empty: never)."
        ),
    )
    hours = models.PositiveIntegerField(
        _("hours"),
        null=True,
        blank=True,
        help_text=_(
            "New lead not contacted: hours allowed for the first contact. "
            "Daily digest: the local hour from which the day's digest is sent."
        ),
    )
    notify_owner = models.BooleanField(_("notify the owner"), default=True)
    notify_manager = models.BooleanField(
        _("notify the manager"),
        default=False,
        help_text=_("The owner's manager, else the managers of the owner's team."),
    )
    send_email = models.BooleanField(
        _("also send e-mail"), default=True, help_text=_("To everyone notified who has an address.")
    )
    set_flag = models.BooleanField(
        _("flag the deal “needs attention”"), default=False, help_text=_("Deal rules only.")
    )
    create_task = models.BooleanField(
        _("create an overdue task"), default=False, help_text=_("Next follow-up rule only.")
    )
    reassign = models.BooleanField(
        _("reassign through the assignment rules"),
        default=False,
        help_text=_("New lead rule only: hand the lead to the next rep of its assignment rule."),
    )

    class Meta:
        ordering = ["key"]
        verbose_name = _("workflow rule")
        verbose_name_plural = _("workflow rules")

    def __str__(self) -> str:
        return self.get_key_display()


class RuleFiring(models.Model):
    """The ledger: one row per rule, record and occurrence. Its unique constraint is what makes
    a rule fire exactly once even when two runs race; the occurrence (the time that started the
    episode, e.g. the last follow-up or the stage entry, plus a step such as "escalate") changes
    only when the condition has cleared and come back, so that is when a rule fires again."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="firings")
    record_type = models.CharField(_("record type"), max_length=8)  # deal, lead, user
    record_id = models.BigIntegerField(_("record id"))
    occurrence_at = models.DateTimeField(_("occurrence"))
    step = models.CharField(_("step"), max_length=16, blank=True, default="")
    fired_at = models.DateTimeField(_("fired at"))
    summary = models.CharField(_("summary"), max_length=300, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "record_type", "record_id", "occurrence_at", "step"],
                name="rule_firing_once_per_occurrence",
            )
        ]
        verbose_name = _("rule firing")
        verbose_name_plural = _("rule firings")

    def __str__(self) -> str:
        return f"{self.rule.key} {self.record_type}#{self.record_id} {self.step}"


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(_("kind"), max_length=32)
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True)
    url = models.CharField(_("link"), max_length=300, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"])]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")

    def __str__(self) -> str:
        return self.title


class AssignmentRule(models.Model):
    """Round-robin over the active reps of a team, for leads that match the conditions.

    Rules are tried in `sequence` order; the first one that matches the lead and has a rep
    who is under the daily cap and through the gate gets it.
    """

    name = models.CharField(_("name"), max_length=100)
    team = models.ForeignKey(
        "accounts.Team", verbose_name=_("team"), on_delete=models.CASCADE, related_name="+"
    )
    sequence = models.PositiveIntegerField(_("sequence"), default=10)
    is_active = models.BooleanField(_("active"), default=True)
    source = models.ForeignKey(
        "crm.Source",
        verbose_name=_("only source"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    industry = models.ForeignKey(
        "crm.Industry",
        verbose_name=_("only industry"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    region = models.CharField(_("only region"), max_length=100, blank=True)
    daily_cap = models.PositiveIntegerField(
        _("daily cap per rep"),
        null=True,
        blank=True,
        help_text=_("Most leads a rep receives in any 24 hours (empty: no cap)."),
    )
    gate_max_open_issues = models.PositiveIntegerField(
        _("gate: most open issues"),
        null=True,
        blank=True,
        help_text=_(
            "No records, no new leads: a rep with more than this many open deals that are "
            "overdue for follow-up or miss a required field is skipped until they catch up "
            "(empty: gate off)."
        ),
    )

    class Meta:
        ordering = ["sequence", "id"]
        verbose_name = _("assignment rule")
        verbose_name_plural = _("assignment rules")

    def __str__(self) -> str:
        return self.name


class LeadAssignment(models.Model):
    """A lead handed out by an assignment rule: the round-robin pointer and the daily cap read
    these rows."""

    lead = models.ForeignKey("crm.Lead", on_delete=models.CASCADE, related_name="assignments")
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lead_assignments"
    )
    rule = models.ForeignKey(
        AssignmentRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assigned_at = models.DateTimeField(_("assigned at"))

    class Meta:
        ordering = ["-assigned_at", "-id"]
        indexes = [
            models.Index(fields=["rep", "assigned_at"]),
            models.Index(fields=["rule", "rep"]),
            models.Index(fields=["lead", "assigned_at"]),
        ]
        verbose_name = _("lead assignment")
        verbose_name_plural = _("lead assignments")

    def __str__(self) -> str:
        return f"{self.lead_id} → {self.rep_id} @ {self.assigned_at:%Y-%m-%d %H:%M}"
