from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "leakmap.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_create_cache_table, sender=self)


def _create_cache_table(sender, using: str = "default", **kwargs) -> None:
    """The database cache's table, after every migrate (idempotent): `leakmap migrate` is the
    only set-up step a server needs."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
