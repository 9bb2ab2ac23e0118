"""Leads: list, detail with timeline, create/edit, quick follow-up, convert, disqualify."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leakmap.accounts.models import ListKind
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import ActivityKind, Lead, LeadStatus
from leakmap.web.forms import ActivityForm, ConvertForm, DisqualifyForm, LeadFilterForm, LeadForm
from leakmap.web.views import lists
from leakmap.web.views.common import (
    apply_errors,
    filter_by_common_fields,
    is_htmx,
    list_download,
    without_page,
)


def _get_lead_for_user(request, pk: int) -> Lead:
    """404 unless the lead is in the user's visible set (a guessed id reveals nothing)."""
    return get_object_or_404(selectors.visible_leads(request.user), pk=pk)


def _get_lead_for_change(request, pk: int) -> Lead:
    """As _get_lead_for_user, and 403 unless the user may change it (crm.policy)."""
    return policy.record_for_change(request.user, selectors.visible_leads(request.user), pk)


def filter_leads(user, form: LeadFilterForm):
    qs = selectors.visible_leads(user)
    # An invalid field (say an owner the user may not see) is dropped; the valid ones still apply,
    # and the list never leaves the visible set.
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    if data.get("q"):
        qs = selectors.search(qs, data["q"], ("name", "company"))
    if data.get("status"):
        qs = qs.filter(status=data["status"])
    return filter_by_common_fields(qs, data)


@login_required
def lead_list(request):
    form = LeadFilterForm(request.GET or None, user=request.user)
    qs, sort = lists.sorted_list(filter_leads(request.user, form), ListKind.LEAD, request)
    page = lists.list_page(qs, sort, request)
    return render(
        request,
        "web/leads/list.html",
        {
            "form": form,
            "page": page,
            "filtered": lists.is_filtered(request),
            "download_query": without_page(request),
            **lists.list_context(request, ListKind.LEAD, sort),
        },
    )


@login_required
def lead_export(request, fmt: str):
    """The leads the list shows for the same filters, every page of them, as CSV or XLSX; in
    the list's order when the user sorted it (else oldest first, the import's order)."""
    form = LeadFilterForm(request.GET or None, user=request.user)
    leads = filter_leads(request.user, form)
    if lists.sort_of(ListKind.LEAD, request.GET.get("sort")).chosen:
        leads = lists.sorted_list(leads, ListKind.LEAD, request)[0]
    return list_download("leads", leads, fmt)


@login_required
def lead_create(request):
    form = LeadForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        owner = data.pop("owner", None) or request.user
        try:
            lead = services.lead_create(services.LeadInput(owner=owner, **data))
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Lead “%(name)s” created.") % {"name": lead.name})
            return redirect("lead_detail", pk=lead.pk)
    return render(request, "web/leads/form.html", {"form": form, "lead": None})


@login_required
def lead_edit(request, pk: int):
    lead = _get_lead_for_change(request, pk)
    fields = list(LeadForm.base_fields) + ["owner"]
    initial = {f: getattr(lead, f, None) for f in fields}
    form = LeadForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        owner = data.pop("owner", None)
        try:
            with transaction.atomic():
                services.lead_update(lead=lead, **data)
                if owner is not None and owner.pk != lead.owner_id:
                    services.lead_assign(lead=lead, owner=owner)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Lead saved."))
            return redirect("lead_detail", pk=lead.pk)
    return render(request, "web/leads/form.html", {"form": form, "lead": lead})


def _lead_context(request, lead: Lead, **extra) -> dict:
    activities = lead.activities.select_related("owner", "deal").order_by("-created_at")[:50]
    deals = selectors.visible_deals(request.user).filter(lead=lead)
    return {
        "lead": lead,
        "now": timezone.now(),
        "activities": activities,
        "deals": deals,
        "activity_form": extra.pop("activity_form", None) or ActivityForm(),
        "disqualify_form": extra.pop("disqualify_form", None) or DisqualifyForm(),
        "can_convert": lead.status not in (LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED),
        **extra,
    }


@login_required
def lead_detail(request, pk: int):
    lead = _get_lead_for_user(request, pk)
    return render(request, "web/leads/detail.html", _lead_context(request, lead))


@login_required
@require_POST
def lead_log_activity(request, pk: int):
    """Quick “log a call / schedule the next follow-up” from the lead page (htmx or plain POST).

    A lead has no follow-up date of its own, so the next follow-up becomes an open task due then.
    """
    lead = _get_lead_for_change(request, pk)
    form = ActivityForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        now = timezone.now()
        try:
            with transaction.atomic():
                services.activity_log(
                    services.ActivityInput(
                        owner=request.user,
                        kind=data["kind"],
                        lead=lead,
                        subject=data["subject"],
                        notes=data["notes"],
                        done_at=now,
                    )
                )
                if data["next_follow_up"]:
                    services.activity_log(
                        services.ActivityInput(
                            owner=request.user,
                            kind=ActivityKind.TASK,
                            lead=lead,
                            subject=_("Follow up"),
                            due_at=data["next_follow_up"],
                        )
                    )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            lead.refresh_from_db()
            form = ActivityForm()
            if not is_htmx(request):
                messages.success(request, _("Follow-up logged."))
                return redirect("lead_detail", pk=lead.pk)
    status = 200 if not form.errors else 422
    template = "web/leads/_timeline.html" if is_htmx(request) else "web/leads/detail.html"
    return render(
        request, template, _lead_context(request, lead, activity_form=form), status=status
    )


@login_required
def lead_convert(request, pk: int):
    lead = _get_lead_for_change(request, pk)
    if lead.status in (LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED):
        messages.error(request, _("This lead cannot be converted any more."))
        return redirect("lead_detail", pk=lead.pk)
    initial = {
        "deal_name": f"{lead.company or lead.name} - {lead.product}" if lead.product else "",
        "amount": lead.budget,
        "account_name": lead.company or lead.name,
        "contact_name": lead.name,
        "owner": lead.owner_id,
    }
    form = ConvertForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            deal = services.lead_convert(
                lead=lead,
                data=services.ConversionInput(
                    deal_name=data["deal_name"],
                    amount=data["amount"],
                    account_name=data["account_name"],
                    contact_name=data["contact_name"],
                    expected_close_date=data["expected_close_date"],
                    stage=data["stage"],
                    owner=data.get("owner"),
                ),
                by=request.user,
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request, _("Converted: account, contact and deal “%(d)s” created.") % {"d": deal}
            )
            return redirect("deal_detail", pk=deal.pk)
    return render(
        request,
        "web/leads/convert.html",
        {"lead": lead, "form": form, "stages": form.fields["stage"].queryset},
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def lead_disqualify(request, pk: int):
    lead = _get_lead_for_change(request, pk)
    form = DisqualifyForm(request.POST)
    if form.is_valid():
        try:
            services.lead_disqualify(lead=lead, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            exc = ValidationError(
                {
                    ("reason" if k == "disqualified_reason" else k): v
                    for k, v in exc.message_dict.items()
                }
            )
            apply_errors(form, exc)
        else:
            messages.success(request, _("Lead disqualified."))
            return redirect("lead_detail", pk=lead.pk)
    return render(
        request,
        "web/leads/detail.html",
        _lead_context(request, lead, disqualify_form=form, show_disqualify=True),
        status=422,
    )
