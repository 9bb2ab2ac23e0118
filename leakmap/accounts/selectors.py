"""Who may see what. Every read list in the product filters through these.

A rep sees their own records, a manager their team's (and their direct reports' and their own),
an admin everything.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from leakmap.accounts.models import Role, User


def owner_filter(user: User, field: str = "owner", *, owner_required: bool = False) -> Q:
    """A Q that keeps the rows whose `field` (a FK to User) is someone `user` may see.

    owner_required: the rows always have an owner (deals). Then a manager's filter leaves out
    its "or unassigned" branch, which could match nothing there and only kept SQLite from using
    the owner indexes: `owner IN (…) OR owner IS NULL` scans every deal (a manager's report
    queries: ~37 -> ~1 ms at a million leads)."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser or user.role == Role.ADMIN:
        return Q()
    if user.role == Role.MANAGER:
        # `owner IN (SELECT id FROM users …)` rather than ORs across a join to the owner, so the
        # database can use the owner indexes. Managers also see unassigned records, so that
        # they can hand them out.
        team = Q(**{f"{field}__in": visible_users(user).values("pk")})
        return team if owner_required else team | Q(**{f"{field}__isnull": True})
    return Q(**{field: user})


def visible_users(user: User) -> QuerySet[User]:
    """The people whose records `user` may see (the choices of an owner filter)."""
    if not user.is_authenticated or not user.is_active:
        return User.objects.none()
    if user.is_superuser or user.role == Role.ADMIN:
        return User.objects.all()
    if user.role == Role.MANAGER:
        q = Q(pk=user.pk) | Q(manager=user)
        if user.team_id is not None:
            q |= Q(team_id=user.team_id)
        return User.objects.filter(q)
    return User.objects.filter(pk=user.pk)


def can_see_owner(user: User, owner_id: int | None) -> bool:
    if owner_id is None:
        return bool(user.is_authenticated and (user.is_superuser or user.role == Role.ADMIN))
    return visible_users(user).filter(pk=owner_id).exists()
