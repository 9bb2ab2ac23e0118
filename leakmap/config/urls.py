from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("leakmap.api.urls")),
    path("notifications/", include("leakmap.automation.urls")),
    path("", include("leakmap.web.urls")),
]
