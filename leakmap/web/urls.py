from __future__ import annotations

from django.urls import path

from leakmap.web.views import auth, crm_records, deals, leads, reports, today
from leakmap.web.views import settings as settings_views

urlpatterns = [
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("language/", auth.set_language, name="set_language"),
    path("", today.today, name="home"),
    path("accounts/", crm_records.account_list, name="account_list"),
    path("accounts/<int:pk>/", crm_records.account_detail, name="account_detail"),
    path("contacts/", crm_records.contact_list, name="contact_list"),
    path("contacts/<int:pk>/", crm_records.contact_detail, name="contact_detail"),
    path("leads/", leads.lead_list, name="lead_list"),
    path("leads/export.<str:fmt>", leads.lead_export, name="lead_export"),
    path("leads/new/", leads.lead_create, name="lead_create"),
    path("leads/<int:pk>/", leads.lead_detail, name="lead_detail"),
    path("leads/<int:pk>/edit/", leads.lead_edit, name="lead_edit"),
    path("leads/<int:pk>/activity/", leads.lead_log_activity, name="lead_log_activity"),
    path("leads/<int:pk>/convert/", leads.lead_convert, name="lead_convert"),
    path("leads/<int:pk>/disqualify/", leads.lead_disqualify, name="lead_disqualify"),
    path("deals/", deals.deal_board, name="deal_board"),
    path("deals/list/", deals.deal_list, name="deal_list"),
    path("deals/export.<str:fmt>", deals.deal_export, name="deal_export"),
    path("deals/<int:pk>/", deals.deal_detail, name="deal_detail"),
    path("deals/<int:pk>/edit/", deals.deal_edit, name="deal_edit"),
    path("deals/<int:pk>/move/", deals.deal_move, name="deal_move"),
    path("deals/<int:pk>/lost/", deals.deal_lost, name="deal_lost"),
    path("deals/<int:pk>/activity/", deals.deal_log_activity, name="deal_log_activity"),
    path("reports/", reports.report_index, name="report_index"),
    path("reports/weekly/", reports.weekly, name="weekly"),
    path("reports/diagnosis/", reports.diagnosis, name="diagnosis"),
    path("reports/<slug:name>/", reports.report_page, name="report"),
    path("reports/<slug:name>/export.<str:fmt>", reports.report_export, name="report_export"),
    path("settings/", settings_views.settings_index, name="settings_index"),
    path("settings/stages/", settings_views.stage_list, name="settings_stages"),
    path("settings/stages/<int:pk>/", settings_views.stage_edit, name="settings_stage_edit"),
    path("settings/stages/<int:pk>/move/", settings_views.stage_move, name="settings_stage_move"),
    path("settings/users/", settings_views.user_list, name="settings_users"),
    path("settings/users/new/", settings_views.user_create, name="settings_user_create"),
    path("settings/users/<int:pk>/", settings_views.user_edit, name="settings_user_edit"),
    path("settings/teams/new/", settings_views.team_create, name="settings_team_create"),
    path("settings/spend/", settings_views.spend_list, name="settings_spend"),
    path("settings/<slug:kind>/", settings_views.lookup_list, name="settings_lookup"),
    path("settings/<slug:kind>/<int:pk>/", settings_views.lookup_edit, name="settings_lookup_edit"),
]
