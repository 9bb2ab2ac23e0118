from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("leakmap.api.urls")),
    path("notifications/", include("leakmap.automation.urls")),
    path("", include("leakmap.web.urls")),
]

handler400 = "leakmap.web.views.errors.bad_request"
handler403 = "leakmap.web.views.errors.permission_denied"
handler404 = "leakmap.web.views.errors.page_not_found"
handler500 = "leakmap.web.views.errors.server_error"
