from __future__ import annotations

from django.contrib import admin

from leakmap.crm import models


class NamedAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]


admin.site.register(models.Source, NamedAdmin)
admin.site.register(models.Industry, NamedAdmin)
admin.site.register(models.Competitor, NamedAdmin)


@admin.register(models.LostReason)
class LostReasonAdmin(NamedAdmin):
    list_display = ["name", "requires_competitor", "is_active"]
    list_filter = ["requires_competitor", "is_active"]


class StageInline(admin.TabularInline):
    model = models.Stage
    extra = 0
    fields = [
        "order",
        "key",
        "label_zh",
        "label_en",
        "probability",
        "kind",
        "sla_days",
        "required_fields",
    ]


@admin.register(models.Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "is_default"]
    inlines = [StageInline]


@admin.register(models.Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "label_zh",
        "label_en",
        "order",
        "probability",
        "kind",
        "sla_days",
        "pipeline",
    ]
    list_filter = ["pipeline", "kind"]
    ordering = ["pipeline", "order"]


@admin.register(models.Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "industry", "owner", "created_at"]
    list_filter = ["industry", "owner"]
    search_fields = ["name"]
    date_hierarchy = "created_at"
    list_select_related = ["industry", "owner"]


@admin.register(models.Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "email", "phone", "title", "owner"]
    search_fields = ["name", "email", "phone", "account__name"]
    list_filter = ["owner"]
    list_select_related = ["account", "owner"]
    raw_id_fields = ["account"]


@admin.register(models.Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "source", "owner", "status", "created_at", "converted_at"]
    list_filter = ["status", "source", "owner", "industry"]
    search_fields = ["name", "company", "email", "phone", "external_id"]
    date_hierarchy = "created_at"
    list_select_related = ["source", "owner"]
    # Status and conversion move through services (convert / disqualify), not raw edits.
    readonly_fields = ["status", "converted_at", "first_contacted_at"]


class StageChangeInline(admin.TabularInline):
    model = models.StageChange
    fk_name = "deal"
    extra = 0
    can_delete = False
    fields = ["at", "from_stage", "to_stage", "by"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ActivityInline(admin.TabularInline):
    model = models.Activity
    fk_name = "deal"
    extra = 0
    fields = ["kind", "subject", "owner", "due_at", "done_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.Deal)
class DealAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "account",
        "amount",
        "stage",
        "owner",
        "source",
        "created_at",
        "expected_close_date",
        "closed_at",
        "lost_reason",
    ]
    list_filter = ["stage", "owner", "source", "lost_reason", "competitor", "needs_attention"]
    search_fields = ["name", "account__name", "external_id"]
    date_hierarchy = "created_at"
    list_select_related = ["account", "stage", "owner", "source", "lost_reason"]
    raw_id_fields = ["lead", "account", "contact"]
    inlines = [StageChangeInline, ActivityInline]
    # The stage, the close and the facts move only through services, which record the history.
    readonly_fields = [
        "stage",
        "closed_at",
        "lost_reason",
        "competitor",
        "reached_order",
        "lost_at_stage",
        "stage_entered_at",
        "last_follow_up_at",
        "follow_up_count",
    ]

    def has_add_permission(self, request):
        # New deals come from converting a lead, the web app, the API or an import: all through
        # services, which write the first history row.
        return False


@admin.register(models.StageChange)
class StageChangeAdmin(admin.ModelAdmin):
    list_display = ["deal", "from_stage", "to_stage", "at", "by"]
    list_filter = ["to_stage"]
    date_hierarchy = "at"
    raw_id_fields = ["deal"]
    list_select_related = ["deal", "from_stage", "to_stage", "by"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(models.Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["kind", "subject", "owner", "deal", "lead", "due_at", "done_at"]
    list_filter = ["kind", "owner"]
    search_fields = ["subject", "notes"]
    date_hierarchy = "created_at"
    raw_id_fields = ["deal", "lead"]
    list_select_related = ["owner", "deal", "lead"]


@admin.register(models.Spend)
class SpendAdmin(admin.ModelAdmin):
    list_display = ["source", "month", "amount"]
    list_filter = ["source"]
    date_hierarchy = "month"
