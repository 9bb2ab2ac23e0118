from __future__ import annotations

from django.urls import path

from leakmap.api import views
from leakmap.api.api import api

app_name = "api"

urlpatterns = [
    path("v1/", api.urls),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("forms/<slug:slug>/", views.web_form, name="web-form"),
]
