from __future__ import annotations

from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "leakmap.exchange"
    label = "exchange"
