from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "leakmap.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from leakmap.accounts.lockout import forget_after_sign_in

        post_migrate.connect(_create_cache_table, sender=self)
        user_logged_in.connect(forget_after_sign_in, dispatch_uid="leakmap.forget_after_sign_in")


def _create_cache_table(sender, using: str = "default", **kwargs) -> None:
    """The database cache's table, after every migrate (idempotent): `leakmap migrate` is the
    only set-up step a server needs."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
