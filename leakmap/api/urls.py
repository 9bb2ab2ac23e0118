from __future__ import annotations

from django.urls import path

from leakmap.api import views
from leakmap.api.api import api

# No app namespace: ninja reverses its own "api-v1:…" names from the root.
urlpatterns = [
    path("v1/", api.urls),
    path("tokens/", views.tokens, name="api-tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="api-token-revoke"),
    path("forms/<slug:slug>/", views.web_form, name="api-web-form"),
]
