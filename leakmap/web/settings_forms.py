"""Forms of the settings pages for the rules and the doors (web forms, webhooks): shape only;
the services (automation.services, api.services) validate meaning."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from leakmap.accounts.models import Team, User
from leakmap.api.models import FORM_FIELDS, WEBHOOK_EVENTS
from leakmap.automation.models import Rule, RuleKey
from leakmap.automation.services import RULE_SETTINGS
from leakmap.crm.models import Industry, Source

# What a number means differs by rule, so each rule's fields say it in their own words.
RULE_HELP = {
    (RuleKey.NO_FOLLOW_UP, "days"): _(
        "Days without a follow-up before the owner is told (empty: the install's limit for "
        "silent deals, as in the reports)."
    ),
    (RuleKey.NO_FOLLOW_UP, "escalate_after_days"): _(
        "Further days after which the manager is told as well (empty: never)."
    ),
    (RuleKey.NO_FOLLOW_UP, "notify_manager"): _("After the further days above."),
    (RuleKey.LEAD_NOT_CONTACTED, "hours"): _(
        "Hours a new lead may wait for its first contact (empty: 24)."
    ),
    (RuleKey.LEAD_NOT_CONTACTED, "reassign"): _(
        "Hand the lead to the next rep of its assignment rule, who gets their own hours."
    ),
    (RuleKey.MANAGER_DIGEST, "hours"): _(
        "Local hour (0–23) from which each day's digest is sent (empty: 8)."
    ),
    (RuleKey.OVERDUE_FOLLOW_UP, "create_task"): _(
        "An overdue task for the owner, due at the planned time."
    ),
}
RULE_LABELS = {
    (RuleKey.MANAGER_DIGEST, "hours"): _("Send from (hour)"),
    (RuleKey.LEAD_NOT_CONTACTED, "hours"): _("Hours allowed"),
}


class RuleForm(forms.Form):
    is_active = forms.BooleanField(label=_("Active"), required=False)
    days = forms.IntegerField(required=False, min_value=0)
    escalate_after_days = forms.IntegerField(required=False, min_value=0)
    hours = forms.IntegerField(required=False, min_value=0)
    notify_owner = forms.BooleanField(required=False)
    notify_manager = forms.BooleanField(required=False)
    send_email = forms.BooleanField(required=False)
    set_flag = forms.BooleanField(required=False)
    create_task = forms.BooleanField(required=False)
    reassign = forms.BooleanField(required=False)

    def __init__(self, *args, rule: Rule, **kwargs):
        super().__init__(*args, **kwargs)
        kept = {"is_active", *RULE_SETTINGS[rule.key]}
        for name in list(self.fields):
            if name not in kept:
                del self.fields[name]
                continue
            if name == "is_active":
                continue
            model_field = Rule._meta.get_field(name)
            field = self.fields[name]
            label = str(RULE_LABELS.get((rule.key, name), model_field.verbose_name))
            field.label = label[:1].upper() + label[1:]
            field.help_text = RULE_HELP.get((rule.key, name), "")


class AssignmentRuleForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("thing", "Name"), max_length=100)
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.order_by("name"))
    sequence = forms.IntegerField(
        label=_("Sequence"),
        min_value=0,
        initial=10,
        help_text=_("Rules are tried from the lowest number up; the first that matches wins."),
    )
    source = forms.ModelChoiceField(
        label=_("Only leads from source"),
        queryset=Source.objects.order_by("-is_active", "name"),
        required=False,
        empty_label=_("Any source"),
    )
    industry = forms.ModelChoiceField(
        label=_("Only leads in industry"),
        queryset=Industry.objects.order_by("-is_active", "name"),
        required=False,
        empty_label=_("Any industry"),
    )
    region = forms.CharField(
        label=_("Only leads in region"),
        max_length=100,
        required=False,
        help_text=_("As the lead's region reads, e.g. 华东 (empty: any region)."),
    )
    daily_cap = forms.IntegerField(
        label=_("Daily cap per rep"),
        min_value=1,
        required=False,
        help_text=_("Most leads a rep receives in any 24 hours (empty: no cap)."),
    )
    gate_max_open_issues = forms.IntegerField(
        label=_("Gate: most open issues"),
        min_value=0,
        required=False,
        help_text=_(
            "No records, no new leads: a rep with more open deals than this that are overdue "
            "for follow-up or miss a required field is skipped (empty: gate off)."
        ),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)


class WebFormForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("thing", "Name"), max_length=100)
    slug = forms.CharField(
        label=_("Address"),
        max_length=50,
        required=False,
        help_text=_("The last part of the form's web address (empty: made from the name)."),
    )
    fields = forms.MultipleChoiceField(
        label=_("Fields shown"),
        choices=[(k, v) for k, v in FORM_FIELDS.items() if k != "name"],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The name is always asked."),
    )
    source = forms.ModelChoiceField(
        label=_("Source it sets"),
        queryset=Source.objects.filter(is_active=True).order_by("name"),
        required=False,
    )
    use_assignment_rules = forms.BooleanField(
        label=_("Give new leads out through the assignment rules"),
        required=False,
        initial=True,
    )
    owner = forms.ModelChoiceField(
        label=_("Or one owner for every lead"),
        queryset=User.objects.filter(is_active=True).order_by("display_name", "username"),
        required=False,
    )
    thank_you_text = forms.CharField(
        label=_("Thank-you text"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    redirect_url = forms.URLField(
        label=_("Redirect after sending"),
        required=False,
        assume_scheme="https",
        help_text=_("Instead of the thank-you text, e.g. https://www.example.com/thanks"),
    )
    allowed_origins = forms.CharField(
        label=_("Sites that may send it from a script"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text=_("One origin per line, e.g. https://www.example.com"),
    )
    min_fill_seconds = forms.IntegerField(
        label=_("Minimum fill time (seconds)"),
        min_value=0,
        initial=3,
        help_text=_("Sent faster than this counts as a bot."),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)


class WebhookForm(forms.Form):
    url = forms.CharField(
        label=_("Target address"),
        max_length=500,
        help_text=_(
            "An http or https address on the internet. Events are POSTed there and redirects "
            "are not followed. Addresses inside your network are refused."
        ),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=list(WEBHOOK_EVENTS.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)
    new_secret = forms.BooleanField(
        label=_("Make a new signing secret"),
        required=False,
        help_text=_("Receivers must then check signatures with the new secret."),
    )
