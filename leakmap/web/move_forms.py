"""The form a stage move asks for when the stage requires deal fields the deal lacks: exactly
those fields, each with the input its type needs (ISO date and datetime inputs whatever the
language), and a confirmation when the move closes the deal as won."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from leakmap.crm import selectors, services
from leakmap.crm.models import Account, Contact, Deal, Industry, Source, Stage
from leakmap.web.forms import DATE, DATETIME


def _field_for(name: str) -> forms.Field:
    """The input for one requirable deal field (crm.services.REQUIRABLE_FIELDS)."""
    if name == "amount":
        # Filled means more than zero (the service's test); the form says so before it asks.
        return forms.DecimalField(
            label=_("Amount"), max_digits=14, decimal_places=2, min_value=Decimal("0.01")
        )
    if name == "expected_close_date":
        return forms.DateField(label=_("Expected close date"), widget=DATE)
    if name == "next_follow_up":
        return forms.DateTimeField(label=_("Next follow-up"), widget=DATETIME)
    if name == "account":
        return forms.CharField(
            label=_("Account"),
            max_length=200,
            help_text=_("An account of this name that you can see is used; else one is created."),
        )
    if name == "contact":
        return forms.CharField(
            label=_("Contact"),
            max_length=200,
            help_text=_("A contact of this name that you can see is used; else one is created."),
        )
    if name == "source":
        return forms.ModelChoiceField(
            queryset=Source.objects.filter(is_active=True), label=_("Source")
        )
    if name == "industry":
        return forms.ModelChoiceField(
            queryset=Industry.objects.filter(is_active=True), label=_("Industry")
        )
    raise ValueError(f"no input for the requirable field {name!r}")


class StageMoveForm(forms.Form):
    """The stage the deal moves to, and the fields that stage requires and the deal lacks. An
    empty one is refused with the service's wording: which field, for which stage."""

    def __init__(self, *args, stage: Stage, missing: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.stage = stage
        for name in missing:
            field = _field_for(name)
            field.error_messages["required"] = _(
                "%(field)s is required to enter stage “%(stage)s”."
            ) % {"field": capfirst(Deal._meta.get_field(name).verbose_name), "stage": stage.label}
            field.widget.attrs["required"] = True  # named for assistive technology
            self.fields[name] = field
        first = next(iter(self.fields.values()), None)
        if first is not None:
            first.widget.attrs["autofocus"] = True

    def values(self, *, deal: Deal, user) -> dict:
        """The cleaned fields as deal values: an account or contact by name becomes the one of
        that name the user can see, or a new one owned by the deal's owner. Call inside the
        transaction of the move, so a refused move leaves no new account behind."""
        values = dict(self.cleaned_data)
        if "account" in values:
            values["account"] = _account_named(values["account"].strip(), deal=deal, user=user)
        if "contact" in values:
            account = values.get("account") or deal.account
            values["contact"] = _contact_named(
                values["contact"].strip(), account=account, deal=deal, user=user
            )
        return values


def _account_named(name: str, *, deal: Deal, user) -> Account:
    found = selectors.visible_accounts(user).filter(name=name).order_by("pk").first()
    return found or services.account_create(name=name, owner=deal.owner)


def _contact_named(name: str, *, account: Account | None, deal: Deal, user) -> Contact:
    visible = selectors.visible_contacts(user).filter(name=name).order_by("pk")
    found = (visible.filter(account=account).first() if account else None) or visible.first()
    return found or services.contact_create(name=name, account=account, owner=deal.owner)
