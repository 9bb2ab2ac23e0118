"""Writes to users and teams."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.accounts.models import Role, Team, User


def team_get_or_create(name: str) -> Team:
    return Team.objects.get_or_create(name=name.strip())[0]


@transaction.atomic
def user_create(
    *,
    username: str,
    role: str = Role.REP,
    team: Team | None = None,
    manager: User | None = None,
    display_name: str = "",
    email: str = "",
    password: str | None = None,
) -> User:
    """A new login. Without a password the account exists (it can own records) but cannot log
    in until an admin sets one."""
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": _("A user needs a username.")})
    if role not in Role.values:
        raise ValidationError(
            {"role": _("Unknown role “%(r)s”; use rep, manager or admin.") % {"r": role}}
        )
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": _("User “%(u)s” already exists.") % {"u": username}})
    user = User(
        username=username,
        role=role,
        team=team,
        manager=manager,
        display_name=display_name,
        email=email,
        is_staff=role == Role.ADMIN,
        is_superuser=role == Role.ADMIN,
    )
    user.full_clean(exclude=["password"])
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user
