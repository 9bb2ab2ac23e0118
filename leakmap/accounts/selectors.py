"""Who may see what. Every read list in the product filters through these.

A rep sees their own records, a manager their team's (and their direct reports' and their own),
an admin everything.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from leakmap.accounts.models import Role, SavedView, User


def owner_filter(
    user: User,
    field: str = "owner",
    *,
    owner_required: bool = False,
    team: list[int] | tuple[int, ...] | None = None,
) -> Q:
    """A Q that keeps the rows whose `field` (a FK to User) is someone `user` may see.

    owner_required: the rows always have an owner (deals). Then a manager's filter leaves out
    its "or unassigned" branch, which could match nothing there and only kept SQLite from using
    the owner indexes: `owner IN (…) OR owner IS NULL` scans every deal.

    team: a manager's team_ids(user), when the caller has them already (a report asks for
    its filter a dozen times)."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser or user.role == Role.ADMIN:
        return Q()
    if user.role == Role.MANAGER:
        # `owner IN (the team's ids)` rather than ORs across a join to the owner, so the
        # database can use the owner indexes. The ids as a list, not a subquery: PostgreSQL
        # answered `owner IN (SELECT …) OR owner IS NULL` with a scan of every lead and a
        # hashed subplan; a list
        # lets it OR two index scans, as SQLite does either way. Managers also see unassigned
        # records, so that they can hand them out.
        ids = Q(**{f"{field}__in": list(team if team is not None else team_ids(user))})
        return ids if owner_required else ids | Q(**{f"{field}__isnull": True})
    return Q(**{field: user})


def team_ids(user: User) -> list[int]:
    """The ids of the people whose records `user` may see (visible_users), as a list."""
    return list(visible_users(user).values_list("pk", flat=True))


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


def sees_unassigned(user: User) -> bool:
    """Whether `user` sees the records nobody owns: admins, and managers, who hand them out
    (owner_filter's "or unassigned" branch)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.role in (Role.ADMIN, Role.MANAGER))
    )


def can_see_owner(user: User, owner_id: int | None) -> bool:
    if owner_id is None:
        return bool(user.is_authenticated and (user.is_superuser or user.role == Role.ADMIN))
    return visible_users(user).filter(pk=owner_id).exists()


def visible_saved_views(user: User, kind: str) -> QuerySet[SavedView]:
    """The views of list `kind` that `user` may pick: their own, those shared with their team,
    and those an admin shared with everyone."""
    if not user.is_authenticated or not user.is_active:
        return SavedView.objects.none()
    shared = Q(shared=True, team__isnull=True)
    if user.team_id is not None:
        shared |= Q(shared=True, team_id=user.team_id)
    return SavedView.objects.filter(Q(owner=user) | shared, kind=kind).select_related("owner")
