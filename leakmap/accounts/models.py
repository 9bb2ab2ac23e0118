from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    REP = "rep", _("Sales rep")
    MANAGER = "manager", _("Manager")
    ADMIN = "admin", _("Admin")


class User(AbstractUser):
    """A login. Reps own records; managers see their team; admins see everything."""

    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.REP)
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
    )
    manager = models.ForeignKey(
        "self",
        verbose_name=_("manager"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reports",
    )
    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        choices=[("zh-hans", "简体中文"), ("en", "English")],
    )

    objects = UserManager()

    class Meta:
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name or self.username

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN or self.is_superuser

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER


class TokenFailure(models.Model):
    """Failed API bearer tokens from one client address, counted while each failure comes
    within the cool-off of the one before (leakmap.accounts.lockout)."""

    address = models.CharField(max_length=64, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.address}: {self.failures}"


class ListKind(models.TextChoices):
    LEAD = "lead", _("Leads")
    DEAL = "deal", _("Deals")
    ACCOUNT = "account", _("Accounts")
    CONTACT = "contact", _("Contacts")


class SavedView(models.Model):
    """A list's filters and sort under a name. Its owner sees it; shared, it is also seen by
    the members of `team` (a manager shares with their team), or by everyone when `team` is
    empty (only an admin shares so). The query holds only the list's own parameters: the
    service refuses others, so following a view never does more than the list's form."""

    owner = models.ForeignKey(
        User, verbose_name=_("owner"), on_delete=models.CASCADE, related_name="saved_views"
    )
    kind = models.CharField(_("list"), max_length=10, choices=ListKind.choices)
    name = models.CharField(_("name"), max_length=100)
    query = models.CharField(_("filters and sort"), max_length=1000, blank=True)
    shared = models.BooleanField(_("shared"), default=False)
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_views",
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "kind", "name"], name="saved_view_unique_name")
        ]
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")

    def __str__(self) -> str:
        return self.name
