from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    name = "leakmap.api"
    label = "api"
    verbose_name = _("API, web forms and webhooks")

    def ready(self) -> None:
        from leakmap.api import webhooks
        from leakmap.config.jobs import register_periodic

        webhooks.connect()
        register_periodic("webhooks", 15, webhooks.deliver_pending_webhooks)
