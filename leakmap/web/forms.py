"""Forms validate shape (types, choices); the services validate meaning and their
ValidationErrors are mapped back onto these fields (views.common.apply_errors)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.forms.models import ModelChoiceIterator
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from leakmap.accounts.models import Role, Team, User
from leakmap.accounts.selectors import visible_users
from leakmap.crm import policy
from leakmap.crm.models import (
    ActivityKind,
    Competitor,
    Industry,
    LeadStatus,
    LostReason,
    Source,
    Stage,
    StageKind,
)
from leakmap.crm.services import REQUIRABLE_FIELDS, default_pipeline


class QuickSelect(forms.Select):
    """A plain <select> written in Python. Django renders each option through a template,
    about 11 ms for the 280 owners of a large company's filter form, on every list and report
    page; this writes the same markup (escaped, the chosen value selected): 1.5 ms for 283
    options (format_html_join took 2.9)."""

    def render(self, name, value, attrs=None, renderer=None):
        chosen = {str(v) for v in self.format_value(value)}
        options = "".join(
            f'<option value="{conditional_escape(v)}"{" selected" if str(v) in chosen else ""}>'
            f"{conditional_escape(label)}</option>"
            for v, label in self.choices
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            mark_safe(options),
        )


class PeopleChoiceIterator(ModelChoiceIterator):
    """A person picker's choices from three columns instead of a whole User per person (about
    17 ms for the 280 people of a large company, on every list and report page). The label is
    User.__str__: the display name, else the username."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        key = self.field.to_field_name or "pk"
        for value, username, display in self.queryset.values_list(key, "username", "display_name"):
            yield (value, display or username)


class PersonChoiceField(forms.ModelChoiceField):
    """An owner filter: the people in its queryset, by pk or by `to_field_name`."""

    iterator = PeopleChoiceIterator
    widget = QuickSelect


class IsoDateInput(forms.DateInput):
    """<input type="date">. The browser reads and sends only `YYYY-MM-DD` whatever the page's
    language; the language's own format (zh-hans `2027/03/20`) leaves it blank, and saving the
    form then erases the date. The fields parse the ISO value in every language: Django adds
    the ISO input formats to each language's DATE_INPUT_FORMATS."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class IsoDateTimeInput(forms.DateTimeInput):
    """<input type="datetime-local">: `YYYY-MM-DDTHH:MM` in the current time zone (the field's
    prepare_value converts an aware value to it; DateTimeField parses the ISO value back in
    that zone). Seconds and milliseconds are written only when the value has them, so saving a
    form unchanged keeps the stored time to the millisecond, the finest the input accepts
    (Django would otherwise drop the fraction from an initial value, and the format the
    seconds)."""

    input_type = "datetime-local"
    supports_microseconds = True

    def format_value(self, value):
        if not isinstance(value, dt.datetime):
            return super().format_value(value)
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        text = value.strftime("%Y-%m-%dT%H:%M")
        if value.second or value.microsecond:
            text += value.strftime(":%S")
        if value.microsecond:
            text += f".{value.microsecond // 1000:03d}"
        return text


class IsoMonthInput(forms.DateInput):
    """<input type="month">: `YYYY-MM` whatever the page's language."""

    input_type = "month"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m")


# One widget per kind of date input; every form (and the report filters) uses these.
DATE = IsoDateInput()
DATETIME = IsoDateTimeInput()
MONTH = IsoMonthInput()


class StageChoiceField(forms.ModelChoiceField):
    """A stage picker whose options carry the entry criteria, shown beside the select."""

    def label_from_instance(self, obj: Stage) -> str:
        return f"{obj.label} ({obj.probability}%)"


def _owner_field(user: User, required: bool = True) -> forms.ModelChoiceField:
    """Whom a record may be given to: crm.policy's rule, whatever the form."""
    return forms.ModelChoiceField(
        queryset=policy.assignable_users(user),
        required=required,
        label=_("Owner"),
    )


class LeadForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    company = forms.CharField(label=_("Company"), max_length=200, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=50, required=False)
    source = forms.ModelChoiceField(
        queryset=Source.objects.filter(is_active=True), label=_("Source"), required=False
    )
    industry = forms.ModelChoiceField(
        queryset=Industry.objects.filter(is_active=True), label=_("Industry"), required=False
    )
    title = forms.CharField(label=_("Job title"), max_length=100, required=False)
    budget = forms.DecimalField(
        label=_("Budget"), max_digits=14, decimal_places=2, required=False, min_value=0
    )
    product = forms.CharField(label=_("Product of interest"), max_length=200, required=False)
    region = forms.CharField(label=_("Region"), max_length=100, required=False)

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        if user.is_admin or user.is_manager:
            self.fields["owner"] = _owner_field(user, required=False)


class LeadFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False)
    source = forms.ModelChoiceField(
        queryset=Source.objects.all(), required=False, label=_("Source"), widget=QuickSelect
    )
    status = forms.ChoiceField(
        choices=[("", _("Any status"))] + LeadStatus.choices,
        required=False,
        label=_("Status"),
        widget=QuickSelect,
    )
    created_from = forms.DateField(label=_("Created from"), required=False, widget=DATE)
    created_to = forms.DateField(label=_("Created to"), required=False, widget=DATE)

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].empty_label = _("Any source")
        if user.is_admin or user.is_manager:
            self.fields["owner"] = PersonChoiceField(
                queryset=visible_users(user), required=False, label=_("Owner")
            )
            self.fields["owner"].empty_label = _("Anyone")


class SearchForm(forms.Form):
    """The account and contact lists' one filter."""

    q = forms.CharField(
        label=_("Search"), required=False, widget=forms.TextInput({"type": "search"})
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)


class ActivityForm(forms.Form):
    """Log a call (or e-mail, meeting, note) and schedule the next follow-up in one go."""

    kind = forms.ChoiceField(
        label=_("Type"),
        choices=[c for c in ActivityKind.choices if c[0] != ActivityKind.TASK],
        initial=ActivityKind.CALL,
    )
    subject = forms.CharField(label=_("Subject"), max_length=200, required=False)
    notes = forms.CharField(
        label=_("Notes"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    next_follow_up = forms.DateTimeField(label=_("Next follow-up"), required=False, widget=DATETIME)


class ConvertForm(forms.Form):
    deal_name = forms.CharField(label=_("Deal name"), max_length=200, required=False)
    amount = forms.DecimalField(
        label=_("Amount"), max_digits=14, decimal_places=2, min_value=0, required=False
    )
    account_name = forms.CharField(label=_("Account"), max_length=200, required=False)
    contact_name = forms.CharField(label=_("Contact"), max_length=200, required=False)
    expected_close_date = forms.DateField(
        label=_("Expected close date"), required=False, widget=DATE
    )
    stage = StageChoiceField(queryset=Stage.objects.none(), label=_("Stage"))

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = open_stages()
        self.fields["stage"].empty_label = None
        if user.is_admin or user.is_manager:
            self.fields["owner"] = _owner_field(user, required=False)


class DisqualifyForm(forms.Form):
    reason = forms.CharField(label=_("Why is this lead disqualified?"), max_length=200)


def open_stages():
    return Stage.objects.filter(pipeline=default_pipeline(), kind=StageKind.OPEN).order_by("order")


class DealForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    amount = forms.DecimalField(label=_("Amount"), max_digits=14, decimal_places=2, min_value=0)
    expected_close_date = forms.DateField(
        label=_("Expected close date"), required=False, widget=DATE
    )
    next_follow_up = forms.DateTimeField(label=_("Next follow-up"), required=False, widget=DATETIME)
    source = forms.ModelChoiceField(
        queryset=Source.objects.all(), label=_("Source"), required=False
    )
    industry = forms.ModelChoiceField(
        queryset=Industry.objects.all(), label=_("Industry"), required=False
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        if user.is_admin or user.is_manager:
            self.fields["owner"] = _owner_field(user)


class DealCreateForm(forms.Form):
    """A deal made directly (not from a lead). The account and the contact are named: one the
    user can see under that exact name is used, else a new one is created (views.deal_new)."""

    name = forms.CharField(label=_("Deal name"), max_length=200)
    account_name = forms.CharField(
        label=_("Account"),
        max_length=200,
        required=False,
        help_text=_("An account you can see with exactly this name is used; else it is created."),
    )
    contact_name = forms.CharField(label=_("Contact"), max_length=200, required=False)
    contact_phone = forms.CharField(label=_("Contact's phone"), max_length=50, required=False)
    contact_email = forms.EmailField(label=_("Contact's e-mail"), required=False)
    amount = forms.DecimalField(label=_("Amount"), max_digits=14, decimal_places=2, min_value=0)
    stage = StageChoiceField(queryset=Stage.objects.none(), label=_("Stage"))
    expected_close_date = forms.DateField(
        label=_("Expected close date"), required=False, widget=DATE
    )
    source = forms.ModelChoiceField(
        queryset=Source.objects.filter(is_active=True), label=_("Source"), required=False
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = open_stages()
        self.fields["stage"].empty_label = None
        # Whom this user may give a deal to (crm.policy): a rep their team and manager.
        self.fields["owner"] = _owner_field(user)
        self.fields["owner"].initial = user.pk
        self.order_fields(["name", "amount", "stage", "expected_close_date", "owner"])

    def clean(self):
        data = super().clean()
        if (data.get("contact_phone") or data.get("contact_email")) and not data.get(
            "contact_name"
        ):
            self.add_error("contact_name", _("Name the contact whose phone or e-mail this is."))
        return data


class DealMoveForm(forms.Form):
    stage = forms.ModelChoiceField(queryset=Stage.objects.all(), label=_("Stage"))


class LostForm(forms.Form):
    # Required here too, so the field carries its `*`; the message is the service's.
    lost_reason = forms.ModelChoiceField(
        queryset=LostReason.objects.filter(is_active=True),
        label=_("Lost reason"),
        # Required here too (crm.services.deal_close_lost refuses a loss without one), so the
        # shared field include marks it with `*` and the form names it before the service runs.
        error_messages={"required": _("Closing a deal as lost requires a lost reason.")},
    )
    competitor = forms.ModelChoiceField(
        queryset=Competitor.objects.filter(is_active=True), label=_("Competitor"), required=False
    )
    notes = forms.CharField(
        label=_("What happened?"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )


class DealFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False)
    source = forms.ModelChoiceField(
        queryset=Source.objects.all(), required=False, label=_("Source"), widget=QuickSelect
    )
    stage = forms.ModelChoiceField(
        queryset=Stage.objects.all(), required=False, label=_("Stage"), widget=QuickSelect
    )
    created_from = forms.DateField(label=_("Created from"), required=False, widget=DATE)
    created_to = forms.DateField(label=_("Created to"), required=False, widget=DATE)

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].empty_label = _("Any source")
        self.fields["stage"].empty_label = _("Any stage")
        # A lazy queryset: no query unless the field is rendered (the board drops it).
        self.fields["stage"].queryset = Stage.objects.filter(pipeline__is_default=True)
        if user.is_admin or user.is_manager:
            self.fields["owner"] = PersonChoiceField(
                queryset=visible_users(user), required=False, label=_("Owner")
            )
            self.fields["owner"].empty_label = _("Anyone")


# --- Settings ------------------------------------------------------------------------------------


class StageForm(forms.Form):
    label_zh = forms.CharField(label=_("Label (Chinese)"), max_length=100)
    label_en = forms.CharField(label=_("Label (English)"), max_length=100)
    probability = forms.IntegerField(label=_("Win probability %"), min_value=0, max_value=100)
    sla_days = forms.IntegerField(
        label=_("SLA days"),
        min_value=0,
        max_value=365,
        required=False,
        help_text=_("A deal longer than this in the stage is flagged as stuck (empty: no SLA)."),
    )
    entry_criteria_zh = forms.CharField(
        label=_("Entry criteria (Chinese)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
    )
    entry_criteria_en = forms.CharField(
        label=_("Entry criteria (English)"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
    )
    required_fields = forms.MultipleChoiceField(
        label=_("Required fields"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from leakmap.crm.models import Deal

        self.fields["required_fields"].choices = [
            (f, capfirst(Deal._meta.get_field(f).verbose_name)) for f in REQUIRABLE_FIELDS
        ]


class LookupForm(forms.Form):
    name = forms.CharField(label=pgettext_lazy("thing", "Name"), max_length=100)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)


class LostReasonForm(LookupForm):
    requires_competitor = forms.BooleanField(label=_("Requires a competitor"), required=False)


class SpendForm(forms.Form):
    source = forms.ModelChoiceField(queryset=Source.objects.all(), label=_("Source"))
    month = forms.CharField(label=_("Month"), widget=MONTH, max_length=7)
    amount = forms.DecimalField(label=_("Amount"), max_digits=14, decimal_places=2, min_value=0)


class UserCreateForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    display_name = forms.CharField(label=_("Display name"), max_length=150, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.REP)
    team = forms.ModelChoiceField(queryset=Team.objects.all(), label=_("Team"), required=False)
    manager = forms.ModelChoiceField(
        queryset=User.objects.filter(role__in=[Role.MANAGER, Role.ADMIN]),
        label=_("Manager"),
        required=False,
    )
    password = forms.CharField(
        label=_("Password"),
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text=_("Leave empty to create a login that cannot sign in yet."),
    )


class UserEditForm(forms.Form):
    display_name = forms.CharField(label=_("Display name"), max_length=150, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    team = forms.ModelChoiceField(queryset=Team.objects.all(), label=_("Team"), required=False)
    manager = forms.ModelChoiceField(
        queryset=User.objects.filter(role__in=[Role.MANAGER, Role.ADMIN]),
        label=_("Manager"),
        required=False,
    )
    is_active = forms.BooleanField(label=_("Can sign in"), required=False)
    password = forms.CharField(
        label=_("New password"),
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text=_("Leave empty to keep the current password."),
    )


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
