from __future__ import annotations

from django.contrib import admin

from leakmap.automation.models import (
    AssignmentRule,
    LeadAssignment,
    Notification,
    Rule,
    RuleFiring,
)


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "is_active",
        "days",
        "escalate_after_days",
        "hours",
        "notify_owner",
        "notify_manager",
        "send_email",
        "set_flag",
        "create_task",
        "reassign",
    ]
    list_editable = ["is_active"]
    # The key says what the rule watches; adding or removing rows would leave the engine
    # without its rule, so admins switch rules off instead.
    readonly_fields = ["key"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RuleFiring)
class RuleFiringAdmin(admin.ModelAdmin):
    list_display = ["fired_at", "rule", "record_type", "record_id", "step", "summary"]
    list_filter = ["rule", "record_type"]
    date_hierarchy = "fired_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "recipient", "kind", "title", "read_at"]
    list_filter = ["kind"]
    search_fields = ["title", "recipient__username"]
    raw_id_fields = ["recipient"]


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "team",
        "sequence",
        "is_active",
        "source",
        "industry",
        "region",
        "daily_cap",
        "gate_max_open_issues",
    ]
    list_editable = ["sequence", "is_active"]


@admin.register(LeadAssignment)
class LeadAssignmentAdmin(admin.ModelAdmin):
    list_display = ["assigned_at", "lead", "rep", "rule"]
    raw_id_fields = ["lead", "rep"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
