from __future__ import annotations

from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "leakmap.automation"
    label = "automation"
