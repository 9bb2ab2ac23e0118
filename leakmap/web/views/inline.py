"""Inline edit of a list row's key fields (htmx): click a value, a small form takes its place,
save, and the row comes back re-rendered. Each save is the service a full edit uses, on a
record fetched through crm.policy (404 unseen, 403 seen but not the caller's)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from leakmap.crm import policy, selectors, services
from leakmap.crm.models import LeadStatus
from leakmap.web.forms import DATETIME
from leakmap.web.views.common import apply_errors, is_htmx

# The statuses a lead's row may be set to; converting and disqualifying have their own pages.
ROW_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED)


def _field(kind: str, name: str, user) -> forms.Field:
    if name == "owner":
        return forms.ModelChoiceField(
            queryset=policy.assignable_users(user), label=gettext_lazy("Owner")
        )
    if kind == "lead" and name == "status":
        return forms.ChoiceField(
            label=gettext_lazy("Status"),
            choices=[c for c in LeadStatus.choices if c[0] in ROW_STATUSES],
        )
    if kind == "deal" and name == "amount":
        return forms.DecimalField(
            label=gettext_lazy("Amount"), max_digits=14, decimal_places=2, min_value=0
        )
    if kind == "deal" and name == "next_follow_up":
        return forms.DateTimeField(
            label=gettext_lazy("Next follow-up"), required=False, widget=DATETIME
        )
    raise Http404


def _form(kind: str, name: str, user, record, data=None) -> forms.Form:
    form = forms.Form(
        data, initial={name: getattr(record, f"{name}_id", None) or getattr(record, name)}
    )
    form.fields[name] = _field(kind, name, user)
    return form


def _save(kind: str, name: str, record, value) -> None:
    if kind == "lead" and name == "owner":
        services.lead_assign(lead=record, owner=value)
    elif kind == "lead":
        services.lead_set_status(lead=record, status=value)
    else:
        services.deal_update(deal=record, **{name: value})


KINDS = {
    "lead": (selectors.visible_leads, "web/leads/_row.html", "lead_list"),
    "deal": (selectors.visible_deals, "web/deals/_row.html", "deal_list"),
}


def inline_edit(request, kind: str, pk: int, name: str):
    visible, template, list_url = KINDS[kind]
    _field(kind, name, request.user)  # 404 for a field the row does not edit
    record = policy.record_for_change(request.user, visible(request.user), pk)
    context = {kind: record, "editing": None, "form": None}
    status = 200
    if request.method == "POST":
        form = _form(kind, name, request.user, record, request.POST)
        if form.is_valid():
            try:
                _save(kind, name, record, form.cleaned_data[name])
            except ValidationError as exc:
                apply_errors(form, exc)
        if form.errors:
            context.update(editing=name, form=form)
            status = 422
        else:
            # Handed to someone outside the user's sight, the record still shows its new row
            # this once; the list leaves it out from the next load.
            context[kind] = visible(request.user).filter(pk=record.pk).first() or record
            if not is_htmx(request):
                messages.success(request, _("Saved."))
                return redirect(list_url)
    elif not request.GET.get("cancel"):
        context.update(editing=name, form=_form(kind, name, request.user, record))
    # The row alone: htmx puts it in place of the one on the page.
    return render(request, template, context, status=status)


@login_required
def lead_inline(request, pk: int, field: str):
    return inline_edit(request, "lead", pk, field)


@login_required
def deal_inline(request, pk: int, field: str):
    return inline_edit(request, "deal", pk, field)
