from __future__ import annotations

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "leakmap.crm"
    label = "crm"
