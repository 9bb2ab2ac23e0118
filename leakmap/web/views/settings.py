"""Settings for admins: pipeline stages, lookup lists, users and teams, channel spend.

Managers may read the stages (settings_reader_required); everyone else gets 403
(admin_required). Each page is a thin view over one service call.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from leakmap.accounts import lockout
from leakmap.accounts import services as account_services
from leakmap.accounts.models import Team, User
from leakmap.crm import services
from leakmap.crm.models import Spend, Stage
from leakmap.web.forms import (
    LookupForm,
    LostReasonForm,
    SpendForm,
    StageForm,
    TeamForm,
    UserCreateForm,
    UserEditForm,
)
from leakmap.web.views.common import admin_required, apply_errors, settings_reader_required

LOOKUPS = {
    "sources": ("source", gettext_lazy("Lead sources"), LookupForm),
    "industries": ("industry", gettext_lazy("Industries"), LookupForm),
    "lost-reasons": ("lost_reason", gettext_lazy("Lost reasons"), LostReasonForm),
    "competitors": ("competitor", gettext_lazy("Competitors"), LookupForm),
}


@settings_reader_required
def settings_index(request):
    return render(request, "web/settings/index.html", {"lookups": LOOKUPS})


@settings_reader_required
def stage_list(request):
    stages = list(Stage.objects.filter(pipeline=services.default_pipeline()).order_by("order"))
    field_labels = dict(StageForm().fields["required_fields"].choices)
    for s in stages:
        s.required_labels = [field_labels[f] for f in s.required_fields or [] if f in field_labels]
    return render(
        request,
        "web/settings/stages.html",
        {"stages": stages, "can_edit": request.user.is_admin},
    )


def _stage_form_page(request, form, stage=None):
    return render(
        request,
        "web/settings/stage_form.html",
        {"stage": stage, "form": form},
        status=422 if form.errors else 200,
    )


@admin_required
def stage_create(request):
    form = StageForm(request.POST or None, initial={"probability": 50, "sla_days": 14})
    if request.method == "POST" and form.is_valid():
        try:
            stage = services.stage_create(pipeline=services.default_pipeline(), **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request,
                _("Stage “%(s)s” added after the last open stage; move it with the arrows.")
                % {"s": stage.label},
            )
            return redirect("settings_stages")
    return _stage_form_page(request, form)


@admin_required
def stage_edit(request, pk: int):
    stage = get_object_or_404(Stage, pk=pk)
    fields = StageForm.base_fields
    form = StageForm(request.POST or None, initial={f: getattr(stage, f) for f in fields})
    if stage.is_closed:
        # Won and lost have no SLA, and their probability is fixed by their kind.
        form.fields["sla_days"].disabled = True
    if request.method == "POST" and form.is_valid():
        try:
            services.stage_update(stage=stage, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Stage “%(s)s” saved.") % {"s": stage.label})
            return redirect("settings_stages")
    return _stage_form_page(request, form, stage)


@admin_required
@require_POST
def stage_delete(request, pk: int):
    stage = get_object_or_404(Stage, pk=pk)
    label = stage.label
    try:
        services.stage_delete(stage=stage)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("settings_stages")
    messages.success(request, _("Stage “%(s)s” removed.") % {"s": label})
    return redirect("settings_stages")


@admin_required
@require_POST
def stage_move(request, pk: int):
    stage = get_object_or_404(Stage, pk=pk)
    try:
        services.stage_reorder(stage=stage, direction=request.POST.get("direction", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Stage order saved; deal history facts were recalculated."))
    return redirect("settings_stages")


def _lookup(kind_slug: str):
    if kind_slug not in LOOKUPS:
        raise Http404
    return LOOKUPS[kind_slug]


@admin_required
def lookup_list(request, kind: str):
    key, title, form_class = _lookup(kind)
    model = services.LOOKUP_MODELS[key]
    form = form_class(request.POST or None, initial={"is_active": True})
    if request.method == "POST" and form.is_valid():
        try:
            services.lookup_save(kind=key, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Added “%(n)s”.") % {"n": form.cleaned_data["name"]})
            return redirect("settings_lookup", kind=kind)
    return render(
        request,
        "web/settings/lookups.html",
        {
            "kind": kind,
            "title": title,
            "items": model.objects.order_by("-is_active", "name"),
            "form": form,
            "is_lost_reason": key == "lost_reason",
        },
        status=422 if form.errors else 200,
    )


@admin_required
def lookup_edit(request, kind: str, pk: int):
    key, title, form_class = _lookup(kind)
    item = get_object_or_404(services.LOOKUP_MODELS[key], pk=pk)
    initial = {"name": item.name, "is_active": item.is_active}
    if key == "lost_reason":
        initial["requires_competitor"] = item.requires_competitor
    form = form_class(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.lookup_save(kind=key, instance=item, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect("settings_lookup", kind=kind)
    return render(
        request,
        "web/settings/lookup_form.html",
        {"kind": kind, "title": title, "item": item, "form": form},
        status=422 if form.errors else 200,
    )


@admin_required
def user_list(request):
    users = User.objects.select_related("team", "manager").order_by("-is_active", "username")
    teams = Team.objects.order_by("name")
    return render(
        request,
        "web/settings/users.html",
        {
            "users": users,
            "teams": teams,
            "team_form": TeamForm(),
            "locked": lockout.locked_usernames(),
            "locked_addresses": lockout.locked_addresses(),
        },
    )


@admin_required
def user_create(request):
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = account_services.user_create(**form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("User “%(u)s” created.") % {"u": user})
            return redirect("settings_users")
    return render(
        request,
        "web/settings/user_form.html",
        {"form": form, "target": None},
        status=422 if form.errors else 200,
    )


@admin_required
def user_edit(request, pk: int):
    target = get_object_or_404(User, pk=pk)
    fields = [f for f in UserEditForm.base_fields if f != "password"]
    form = UserEditForm(request.POST or None, initial={f: getattr(target, f) for f in fields})
    form.fields["manager"].queryset = form.fields["manager"].queryset.exclude(pk=target.pk)
    if request.method == "POST" and form.is_valid():
        try:
            account_services.user_update(user=target, by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("User “%(u)s” saved.") % {"u": target})
            return redirect("settings_users")
    return render(
        request,
        "web/settings/user_form.html",
        {"form": form, "target": target},
        status=422 if form.errors else 200,
    )


@admin_required
@require_POST
def team_create(request):
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            account_services.team_create(name=form.cleaned_data["name"])
        except ValidationError as exc:
            apply_errors(form, exc)
    if form.errors:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    else:
        messages.success(request, _("Team created."))
    return redirect("settings_users")


@admin_required
def spend_list(request):
    form = SpendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            month = dt.datetime.strptime(data["month"], "%Y-%m").date()
        except ValueError:
            form.add_error("month", _("Use the format YYYY-MM, e.g. 2026-03."))
        else:
            try:
                services.spend_set(source=data["source"], month=month, amount=data["amount"])
            except ValidationError as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, _("Spend saved."))
                return redirect("settings_spend")
    rows = Spend.objects.select_related("source").order_by("-month", "source__name")[:240]
    return render(
        request,
        "web/settings/spend.html",
        {"form": form, "rows": rows},
        status=422 if form.errors else 200,
    )
