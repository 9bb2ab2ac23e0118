from __future__ import annotations

from django.urls import path

from leakmap.automation import views

app_name = "automation"

urlpatterns = [
    path("", views.notification_list, name="notifications"),
    path("read-all/", views.notification_read_all, name="notification_read_all"),
    path("<int:notification_id>/read/", views.notification_read, name="notification_read"),
]
