"""Bulk actions from the lists: one change applied to many records, all or nothing.

Each record goes through the same service a single change uses (so history, facts and events
are the same) and through crm.policy: when the actor may not change (or delete) some of the
records, the whole action is refused with their names before anything is written. When a
service refuses some records (a stage's required fields), every refusal is collected and the
transaction is rolled back, so the message lists them all and nothing is half-written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm import policy
from leakmap.crm.models import Account, ActivityKind, Contact, Deal, Lead, Stage
from leakmap.crm.services.accounts import (
    account_delete,
    account_update,
    contact_delete,
    contact_update,
)
from leakmap.crm.services.activities import ActivityInput, activity_log
from leakmap.crm.services.deals import deal_delete, deal_move, deal_update
from leakmap.crm.services.leads import lead_assign, lead_delete

# Names listed in a refusal; the rest are counted ("and 12 more").
NAMES_LISTED = 10


def _names(records: Sequence[Model]) -> str:
    shown = ", ".join(f"“{r}”" for r in records[:NAMES_LISTED])
    rest = len(records) - NAMES_LISTED
    if rest > 0:
        shown += " " + _("and %(n)s more") % {"n": rest}
    return shown


def _refuse_unpermitted(actor: User, records: Sequence[Model], *, delete: bool) -> None:
    refused = []
    for record in records:
        try:
            (policy.require_delete if delete else policy.require_change)(actor, record)
        except PermissionDenied:
            refused.append(record)
    if refused:
        raise PermissionDenied(
            _("Nothing was changed: you may not change %(names)s.") % {"names": _names(refused)}
        )


def _apply(
    actor: User, records: Sequence[Model], change: Callable[[Model], object], *, delete=False
) -> int:
    if not records:
        raise ValidationError(_("Select at least one row."))
    _refuse_unpermitted(actor, records, delete=delete)
    failures = []
    with transaction.atomic():
        for record in records:
            try:
                # A savepoint per record: a refused record's partial write is undone and the
                # others still run, so that every refusal can be named.
                with transaction.atomic():
                    change(record)
            except ValidationError as exc:
                failures.append(f"“{record}”: {' '.join(exc.messages)}")
        if failures:
            transaction.set_rollback(True)
    if failures:
        raise ValidationError([_("Nothing was changed.")] + failures)
    return len(records)


def _check_owner(actor: User, owner: User | None) -> None:
    if owner is None or not policy.assignable_users(actor).filter(pk=owner.pk).exists():
        raise ValidationError({"owner": _("You cannot hand records to that person.")})


def records_bulk_assign(
    *, actor: User, records: Sequence[Lead | Deal | Account | Contact], owner: User
) -> int:
    """Give records to `owner` (someone crm.policy lets the actor hand records to)."""
    _check_owner(actor, owner)
    assigners = {
        Lead: lambda r: lead_assign(lead=r, owner=owner),
        Deal: lambda r: deal_update(deal=r, owner=owner),
        Account: lambda r: account_update(account=r, owner=owner),
        Contact: lambda r: contact_update(contact=r, owner=owner),
    }

    def change(record):
        assigners[type(record)](record)

    return _apply(actor, records, change)


def deals_bulk_move(*, actor: User, deals: Sequence[Deal], stage: Stage) -> int:
    """Move deals to an open or won stage (closing lost asks for a reason, one deal at a time).
    A deal already there is left as it is; one missing the stage's required fields refuses
    the whole move, named with what it lacks."""
    if stage.kind == "lost":
        raise ValidationError(
            {"stage": _("Close deals as lost one at a time: each needs its lost reason.")}
        )

    def change(deal):
        if deal.stage_id != stage.pk:
            deal_move(deal=deal, stage=stage, by=actor)

    return _apply(actor, deals, change)


def records_bulk_follow_up(
    *, actor: User, records: Sequence[Lead | Deal], due_at: dt.datetime
) -> int:
    """Set the next follow-up: a deal's own date; for a lead (which has none) an open task due
    then, owned by the lead's owner so that it reaches their Today."""
    if due_at is None:
        raise ValidationError({"due_at": _("Choose when to follow up.")})

    def change(record):
        if isinstance(record, Lead):
            activity_log(
                ActivityInput(
                    owner=record.owner or actor,
                    kind=ActivityKind.TASK,
                    lead=record,
                    subject=_("Follow up"),
                    due_at=due_at,
                )
            )
        else:
            deal_update(deal=record, next_follow_up=due_at)

    return _apply(actor, records, change)


def records_bulk_delete(*, actor: User, records: Sequence[Lead | Deal | Account | Contact]) -> int:
    deleters = {
        Lead: lambda r: lead_delete(lead=r),
        Deal: lambda r: deal_delete(deal=r),
        Account: lambda r: account_delete(account=r),
        Contact: lambda r: contact_delete(contact=r),
    }
    return _apply(actor, records, lambda r: deleters[type(r)](r), delete=True)
