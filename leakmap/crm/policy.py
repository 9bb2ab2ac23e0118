"""Who may change what. Seeing a record is not owning it.

- **view**: the visibility selectors (`crm.selectors.visible_*`): a rep sees their own records
  and the accounts and contacts their deals name; a manager their team's; an admin all.
- **change** and **delete**: the record's owner, a manager of the owner (the people whose
  records the manager sees: `accounts.selectors.visible_users`), an admin. Records nobody owns
  are changed by managers and admins, who hand them out. Leads, deals and activities are seen
  only by those who may change them; accounts and contacts are also seen through a deal on
  them, which grants no change.
- **delete** additionally refuses an account or contact that deals the actor may not change
  still name: deleting it would take it from another person's deal.
- **re-own** (change the owner): whoever may change the record, handing it to someone in
  `assignable_users(actor)`; the same list bounds the owner of a record the actor creates.

Every write entry point (web views, the API, bulk actions) fetches its record through
`record_for_change` / `record_for_delete`, and resolves a new owner through `assignable_users`,
so the rule is the same whatever the door. A refusal raises Http404 when the actor may not even
see the record (its existence does not leak) and PermissionDenied with a message naming the
owner when they may see but not change it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from leakmap.accounts.models import Role, User
from leakmap.accounts.selectors import owner_filter, team_ids


def _active(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active)


def may_change(user: User, record: Model) -> bool:
    """Whether `user` may edit `record` (any model with an `owner`), including closing,
    converting, logging on it and deleting it (see may_delete for the extra check)."""
    if not _active(user):
        return False
    if user.is_admin:
        return True
    owner_id = record.owner_id
    if owner_id is None:
        return user.role == Role.MANAGER
    if owner_id == user.pk:
        return True
    return user.role == Role.MANAGER and owner_id in team_ids(user)


def changeable(user: User, queryset: QuerySet) -> QuerySet:
    """The rows of `queryset` (of a model with an `owner`) that `user` may change: the
    queryset form of may_change, for lists and bulk actions."""
    return queryset.filter(owner_filter(user))


def assignable_users(user: User) -> QuerySet[User]:
    """Whom `user` may make the owner of a record they may change (or create).

    An admin: anyone active. A manager: the people whose records they see. A rep: themselves,
    their team, and their manager, so that they can hand a record over within the team."""
    if not _active(user):
        return User.objects.none()
    active = User.objects.filter(is_active=True)
    if user.is_admin:
        return active
    if user.role == Role.MANAGER:
        return active.filter(pk__in=team_ids(user))
    people = active.filter(pk=user.pk)
    if user.team_id is not None:
        people = people | active.filter(team_id=user.team_id)
    if user.manager_id is not None:
        people = people | active.filter(pk=user.manager_id)
    return people


def _deals_of_others(user: User, record: Model) -> int:
    from leakmap.crm.models import Account, Contact, Deal

    if user.is_admin:
        return 0
    if isinstance(record, Account):
        deals = Deal.objects.filter(account=record)
    elif isinstance(record, Contact):
        deals = Deal.objects.filter(contact=record)
    else:
        return 0
    return deals.exclude(owner_filter(user, owner_required=True)).count()


def _refusal(record: Model) -> PermissionDenied:
    owner = getattr(record, "owner", None)
    if owner is None:
        return PermissionDenied(
            _("Nobody owns this %(kind)s yet: only a manager or an admin can change it.")
            % {"kind": record._meta.verbose_name}
        )
    return PermissionDenied(
        _(
            "You can see this %(kind)s but not change it: it belongs to %(owner)s. "
            "Ask them, their manager or an admin."
        )
        % {"kind": record._meta.verbose_name, "owner": owner}
    )


def require_change(user: User, record: Model) -> None:
    if not may_change(user, record):
        raise _refusal(record)


def require_delete(user: User, record: Model) -> None:
    require_change(user, record)
    others = _deals_of_others(user, record)
    if others:
        raise PermissionDenied(
            _(
                "This %(kind)s cannot be deleted: %(n)s deal(s) of other people still use it. "
                "Ask their owners, their manager or an admin."
            )
            % {"kind": record._meta.verbose_name, "n": others}
        )


def record_for_change(user: User, visible: QuerySet, pk: int) -> Model:
    """The record at a URL for a write: 404 when `user` may not see it (it may as well not
    exist), PermissionDenied when they may see but not change it."""
    record = visible.filter(pk=pk).first()
    if record is None:
        raise Http404
    require_change(user, record)
    return record


def record_for_delete(user: User, visible: QuerySet, pk: int) -> Model:
    record = visible.filter(pk=pk).first()
    if record is None:
        raise Http404
    require_delete(user, record)
    return record
