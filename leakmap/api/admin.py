from __future__ import annotations

from django import forms
from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.translation import gettext_lazy as _

from leakmap.api import webforms
from leakmap.api.models import (
    FORM_FIELDS,
    WEBHOOK_EVENTS,
    ApiToken,
    WebForm,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)


class WebFormAdminForm(forms.ModelForm):
    fields = forms.MultipleChoiceField(
        label=_("fields shown"),
        choices=list(FORM_FIELDS.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("The name is always asked."),
    )

    class Meta:
        model = WebForm
        fields = [
            "name",
            "slug",
            "fields",
            "source",
            "owner",
            "use_assignment_rules",
            "thank_you_text",
            "redirect_url",
            "allowed_origins",
            "min_fill_seconds",
            "is_active",
        ]
        # How api.webforms.lead_owner_plan uses the two fields together.
        help_texts = {
            "owner": _(
                "Gets the form's leads. With the assignment rules on, gets only those no rule "
                "assigns; with neither, unassigned leads wait for a manager."
            ),
            "use_assignment_rules": _(
                "Let the lead assignment rules pick the owner. A form without an owner always "
                "uses them."
            ),
        }


@admin.register(WebForm)
class WebFormAdmin(admin.ModelAdmin):
    form = WebFormAdminForm
    list_display = ["name", "slug", "source", "owner", "use_assignment_rules", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["embed_snippet", "created_at"]

    def get_object(self, request, object_id, from_field=None):
        # The snippet's URLs need the request's host (webforms.public_url); a read-only
        # field's callable is only given the object, so the object carries it.
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.shown_to = request
        return obj

    @admin.display(description=_("embed snippet"))
    def embed_snippet(self, obj: WebForm) -> str:
        if obj.pk is None:
            return _("Save the form to get its snippet.")
        url = webforms.public_url(
            reverse("api-web-form", args=[obj.slug]), getattr(obj, "shown_to", None)
        )
        html = render_to_string("api/_form.html", webforms.form_context(obj, action=url))
        return format_html(
            "<p>{}</p><textarea readonly rows='18' cols='100' style='font-family:monospace'>{}"
            "</textarea><p>{} <a href='{}'>{}</a></p>",
            _(
                "Paste this HTML into any page; it works without JavaScript. Its token is signed "
                "the time you copied it and expires after LEAKMAP_WEBFORM_TOKEN_MAX_AGE seconds "
                "(a day unless set), so for a form that keeps working link to the hosted page or "
                "put it in an iframe: it signs a fresh token on every visit."
            ),
            escape(html),
            _("Hosted form:"),
            url,
            url,
        )


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "event_list", "is_active", "created_at"]

    class WebhookForm(forms.ModelForm):
        events = forms.MultipleChoiceField(
            label=_("events"),
            choices=list(WEBHOOK_EVENTS.items()),
            widget=forms.CheckboxSelectMultiple,
        )

        class Meta:
            model = Webhook
            fields = ["url", "events", "secret", "description", "is_active"]
            help_texts = {
                "url": _(
                    "An http or https address on the internet. Deliveries are POSTed there and "
                    "redirects are not followed. Addresses inside your network are refused "
                    "unless LEAKMAP_WEBHOOK_ALLOW_PRIVATE=1 is set."
                )
            }

    form = WebhookForm

    @admin.display(description=_("events"))
    def event_list(self, obj: Webhook) -> str:
        return ", ".join(obj.events or [])


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["at", "status_code", "error", "duration_ms"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "webhook", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [AttemptInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["digest"]

    def has_add_permission(self, request) -> bool:
        return False
