"""Settings for the rules and the doors: workflow rules, lead assignment rules, web-to-lead
forms and webhooks. Admins change them (each page a thin view over one service call);
managers may read the two rule lists, which decide how their team is chased and fed."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leakmap.accounts.models import Role, User
from leakmap.api import services as api_services
from leakmap.api import webforms
from leakmap.api.models import FORM_FIELDS, WEBHOOK_EVENTS, WebForm, Webhook, WebhookDelivery
from leakmap.automation import services as automation_services
from leakmap.automation.models import AssignmentRule, Rule, RuleKey
from leakmap.web.settings_forms import AssignmentRuleForm, RuleForm, WebFormForm, WebhookForm
from leakmap.web.views.common import admin_required, apply_errors, settings_reader_required

RECENT_DELIVERIES = 20


def _form_page(request, template: str, context: dict):
    form = context["form"]
    return render(request, template, context, status=422 if form.errors else 200)


def _switched(request, label: str, is_active: bool) -> None:
    if is_active:
        messages.success(request, _("“%(n)s” is on.") % {"n": label})
    else:
        messages.success(request, _("“%(n)s” is off.") % {"n": label})


def _wants_on(request) -> bool:
    return request.POST.get("active") == "1"


# --- Workflow rules ------------------------------------------------------------------------------


@settings_reader_required
def rule_list(request):
    rules = list(Rule.objects.all())
    installed = {r.key for r in rules}
    for rule in rules:
        rule.settings_shown = _rule_summary(rule)
    missing = [(key, label) for key, label in RuleKey.choices if key not in installed]
    return render(
        request,
        "web/settings/rules.html",
        {"rules": rules, "missing": missing, "can_edit": request.user.is_admin},
    )


def _rule_summary(rule: Rule) -> list[str]:
    """The rule's thresholds and actions in words, for the list."""
    shown = automation_services.RULE_SETTINGS[rule.key]
    parts = []
    if "days" in shown:
        if rule.days:
            parts.append(_("after %(n)d days") % {"n": rule.days})
        else:
            parts.append(_("after the install's silent-deal limit"))
    if "escalate_after_days" in shown and rule.escalate_after_days is not None:
        parts.append(_("manager after %(n)d further days") % {"n": rule.escalate_after_days})
    if "hours" in shown and rule.hours is not None:
        if rule.key == RuleKey.MANAGER_DIGEST:
            parts.append(_("from %(h)02d:00") % {"h": rule.hours})
        else:
            parts.append(_("after %(n)d hours") % {"n": rule.hours})
    labels = {
        "notify_owner": _("tell the owner"),
        "notify_manager": _("tell the manager"),
        "send_email": _("by e-mail too"),
        "set_flag": _("flag the deal"),
        "create_task": _("create a task"),
        "reassign": _("reassign"),
    }
    parts += [
        str(text) for field, text in labels.items() if field in shown and getattr(rule, field)
    ]
    return parts


@admin_required
def rule_edit(request, pk: int):
    rule = get_object_or_404(Rule, pk=pk)
    form = RuleForm(
        request.POST or None,
        rule=rule,
        initial={f: getattr(rule, f) for f in RuleForm.base_fields},
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            automation_services.rule_update(rule=rule, **data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Workflow rule “%(n)s” saved.") % {"n": rule})
            return redirect("settings_rules")
    return _form_page(request, "web/settings/rule_form.html", {"form": form, "rule": rule})


@admin_required
@require_POST
def rule_toggle(request, pk: int):
    rule = get_object_or_404(Rule, pk=pk)
    automation_services.rule_set_active(rule=rule, is_active=_wants_on(request))
    _switched(request, str(rule), rule.is_active)
    return redirect("settings_rules")


@admin_required
@require_POST
def rule_install(request):
    try:
        rule = automation_services.rule_create(key=request.POST.get("key", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Workflow rule “%(n)s” installed.") % {"n": rule})
    return redirect("settings_rules")


# --- Assignment rules ----------------------------------------------------------------------------


@settings_reader_required
def assignment_list(request):
    rules = AssignmentRule.objects.select_related("team", "source", "industry").annotate(
        reps=Count(
            "team__members",
            filter=Q(team__members__role=Role.REP, team__members__is_active=True),
        )
    )
    return render(
        request,
        "web/settings/assignment_rules.html",
        {"rules": rules, "can_edit": request.user.is_admin},
    )


def _assignment_saved(request, rule: AssignmentRule, verb: str) -> None:
    messages.success(request, verb % {"n": rule.name})
    reps = User.objects.filter(team=rule.team, role=Role.REP, is_active=True).exists()
    if rule.is_active and not reps:
        messages.warning(
            request,
            _("Team “%(t)s” has no active reps, so this rule hands out no leads yet.")
            % {"t": rule.team},
        )


@admin_required
def assignment_create(request):
    form = AssignmentRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule = automation_services.assignment_rule_save(**form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            _assignment_saved(request, rule, _("Assignment rule “%(n)s” created."))
            return redirect("settings_assignment")
    return _form_page(request, "web/settings/assignment_form.html", {"form": form, "rule": None})


@admin_required
def assignment_edit(request, pk: int):
    rule = get_object_or_404(AssignmentRule, pk=pk)
    initial = {f: getattr(rule, f) for f in AssignmentRuleForm.base_fields}
    form = AssignmentRuleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            automation_services.assignment_rule_save(instance=rule, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            _assignment_saved(request, rule, _("Assignment rule “%(n)s” saved."))
            return redirect("settings_assignment")
    return _form_page(request, "web/settings/assignment_form.html", {"form": form, "rule": rule})


@admin_required
@require_POST
def assignment_toggle(request, pk: int):
    rule = get_object_or_404(AssignmentRule, pk=pk)
    automation_services.assignment_rule_set_active(rule=rule, is_active=_wants_on(request))
    _switched(request, rule.name, rule.is_active)
    return redirect("settings_assignment")


# --- Web-to-lead forms ---------------------------------------------------------------------------


def _hosted_url(request, form: WebForm) -> str:
    """The form's public address as the admin reached this server: the address visitors use,
    where LEAKMAP_SITE_URL may still name the development port."""
    return request.build_absolute_uri(reverse("api-web-form", args=[form.slug]))


@admin_required
def webform_list(request):
    forms = list(WebForm.objects.select_related("source", "owner").order_by("name"))
    for form in forms:
        form.url = _hosted_url(request, form)
        form.field_labels = [FORM_FIELDS[f] for f in form.shown_fields]
    return render(request, "web/settings/webforms.html", {"forms": forms})


@admin_required
def webform_create(request):
    form = WebFormForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            web_form = api_services.webform_save(**form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Web form “%(n)s” created.") % {"n": web_form.name})
            return redirect("settings_webform_edit", pk=web_form.pk)
    return _form_page(request, "web/settings/webform_form.html", {"form": form, "web_form": None})


@admin_required
def webform_edit(request, pk: int):
    web_form = get_object_or_404(WebForm, pk=pk)
    initial = {f: getattr(web_form, f) for f in WebFormForm.base_fields}
    form = WebFormForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            api_services.webform_save(instance=web_form, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Web form “%(n)s” saved.") % {"n": web_form.name})
            return redirect("settings_webforms")
    web_form.refresh_from_db()
    url = _hosted_url(request, web_form)
    snippet = render_to_string("api/_form.html", webforms.form_context(web_form, action=url))
    return _form_page(
        request,
        "web/settings/webform_form.html",
        {"form": form, "web_form": web_form, "url": url, "snippet": snippet},
    )


@admin_required
@require_POST
def webform_toggle(request, pk: int):
    web_form = get_object_or_404(WebForm, pk=pk)
    api_services.webform_set_active(form=web_form, is_active=_wants_on(request))
    _switched(request, web_form.name, web_form.is_active)
    return redirect("settings_webforms")


# --- Webhooks ------------------------------------------------------------------------------------


@admin_required
def webhook_list(request):
    hooks = list(
        Webhook.objects.annotate(
            failed=Count("deliveries", filter=Q(deliveries__status="failed")),
            pending=Count("deliveries", filter=Q(deliveries__status="pending")),
        ).order_by("url")
    )
    for hook in hooks:
        hook.event_labels = [WEBHOOK_EVENTS.get(e, e) for e in hook.events or []]
    return render(request, "web/settings/webhooks.html", {"hooks": hooks})


@admin_required
def webhook_create(request):
    form = WebhookForm(request.POST or None)
    del form.fields["new_secret"]
    if request.method == "POST" and form.is_valid():
        try:
            hook = api_services.webhook_save(**form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Webhook created. Its signing secret is shown below."))
            return redirect("settings_webhook_edit", pk=hook.pk)
    return _form_page(request, "web/settings/webhook_form.html", {"form": form, "hook": None})


@admin_required
def webhook_edit(request, pk: int):
    hook = get_object_or_404(Webhook, pk=pk)
    initial = {f: getattr(hook, f, None) for f in WebhookForm.base_fields}
    form = WebhookForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            api_services.webhook_save(instance=hook, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Webhook saved."))
            return redirect("settings_webhook_edit", pk=hook.pk)
    hook.refresh_from_db()
    deliveries = list(
        WebhookDelivery.objects.filter(webhook=hook)
        .defer("body")
        .order_by("-created_at", "-id")[:RECENT_DELIVERIES]
    )
    for delivery in deliveries:
        delivery.event_label = WEBHOOK_EVENTS.get(delivery.event, delivery.event)
    return _form_page(
        request,
        "web/settings/webhook_form.html",
        {
            "form": form,
            "hook": hook,
            "deliveries": deliveries,
        },
    )


@admin_required
@require_POST
def webhook_toggle(request, pk: int):
    hook = get_object_or_404(Webhook, pk=pk)
    api_services.webhook_set_active(hook=hook, is_active=_wants_on(request))
    _switched(request, hook.description or hook.url, hook.is_active)
    return redirect("settings_webhooks")
