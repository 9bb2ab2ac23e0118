"""Writes to users and teams."""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.accounts.models import ListKind, Role, SavedView, Team, User


def password_generate(user: User) -> str:
    """A random password that passes the password policy for `user` (saved or not). A random
    string can, rarely, share enough letters with a long username or name to count as
    similar to it; such a draw is thrown away."""
    while True:
        password = secrets.token_urlsafe(12)
        try:
            validate_password(password, user)
        except ValidationError:
            continue
        return password


def _check_password(password: str, user: User) -> None:
    """AUTH_PASSWORD_VALIDATORS, with their messages on the password field."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    _check_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


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
        _check_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


# --- Settings: users and teams (web settings pages) ----------------------------------------------


@transaction.atomic
def user_set_language(*, user: User, language: str) -> User:
    if language not in {"zh-hans", "en"}:
        raise ValidationError({"language": _("Unknown language “%(l)s”.") % {"l": language}})
    user.language = language
    user.save(update_fields=["language"])
    return user


@transaction.atomic
def user_update(
    *,
    user: User,
    by: User,
    role: str,
    team: Team | None,
    manager: User | None,
    display_name: str = "",
    email: str = "",
    is_active: bool = True,
    password: str = "",
) -> User:
    """An admin edits a login. An admin cannot lock themselves out by demoting or disabling
    their own account."""
    if role not in Role.values:
        raise ValidationError({"role": _("Unknown role “%(r)s”.") % {"r": role}})
    if user.pk == by.pk and (role != Role.ADMIN or not is_active):
        raise ValidationError({"role": _("You cannot demote or disable your own account.")})
    if manager is not None and manager.pk == user.pk:
        raise ValidationError({"manager": _("A user cannot be their own manager.")})
    user.role = role
    user.team = team
    user.manager = manager
    user.display_name = display_name
    user.email = email
    user.is_active = is_active
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN
    user.full_clean(exclude=["password"])
    if password:
        _check_password(password, user)
        user.set_password(password)
    user.save()
    return user


@transaction.atomic
def team_create(*, name: str) -> Team:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("A team needs a name.")})
    if Team.objects.filter(name=name).exists():
        raise ValidationError({"name": _("Team “%(t)s” already exists.") % {"t": name}})
    return Team.objects.create(name=name)


@transaction.atomic
def team_rename(*, team: Team, name: str) -> Team:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("A team needs a name.")})
    if Team.objects.filter(name=name).exclude(pk=team.pk).exists():
        raise ValidationError({"name": _("Team “%(t)s” already exists.") % {"t": name}})
    team.name = name
    team.save(update_fields=["name"])
    return team


@transaction.atomic
def saved_view_save(
    *, owner: User, kind: str, name: str, query: str, share: bool = False
) -> SavedView:
    """Save a list's filters and sort under `name` (a view of the same name is replaced).

    `query` must already hold only the list's own parameters (the list checks them against
    its filter form). Sharing: a manager shares with their team, an admin with everyone; a
    rep's views stay their own."""
    name = (name or "").strip()
    errors = {}
    if kind not in ListKind.values:
        errors["kind"] = _("There is no list “%(kind)s”.") % {"kind": kind}
    if not name:
        errors["name"] = _("Give the view a name.")
    elif len(name) > SavedView._meta.get_field("name").max_length:
        errors["name"] = _("The name is too long (at most 100 characters).")
    if len(query) > SavedView._meta.get_field("query").max_length:
        errors["query"] = _("Too many filters to save in one view.")
    team = None
    if share:
        if owner.is_admin:
            team = None
        elif owner.role == Role.MANAGER and owner.team_id is not None:
            team = owner.team
        elif owner.role == Role.MANAGER:
            errors["share"] = _("You have no team to share the view with.")
        else:
            errors["share"] = _("Only a manager or an admin can share a view.")
    if errors:
        raise ValidationError(errors)
    view, _created = SavedView.objects.update_or_create(
        owner=owner,
        kind=kind,
        name=name,
        defaults={"query": query, "shared": bool(share), "team": team},
    )
    return view


@transaction.atomic
def saved_view_delete(*, view: SavedView) -> None:
    view.delete()
