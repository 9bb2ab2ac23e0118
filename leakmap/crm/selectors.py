"""Every read list of the funnel's record, filtered by who is asking.

A rep sees their own leads, deals and activities; a manager their team's; an admin all.
Views, exports, the API and report filters all start from these, so a guessed URL or id finds
nothing it should not (the caller turns "not in the visible set" into a 404).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from leakmap.accounts.models import User
from leakmap.accounts.selectors import owner_filter
from leakmap.crm.models import Account, Activity, Contact, Deal, Lead


def visible_leads(user: User) -> QuerySet[Lead]:
    return Lead.objects.filter(owner_filter(user)).select_related("source", "owner", "industry")


def visible_deals(user: User) -> QuerySet[Deal]:
    return Deal.objects.filter(owner_filter(user, owner_required=True)).select_related(
        "stage", "owner", "source", "account", "lost_reason", "competitor"
    )


def visible_activities(user: User) -> QuerySet[Activity]:
    return Activity.objects.filter(owner_filter(user)).select_related("owner", "deal", "lead")


def visible_accounts(user: User) -> QuerySet[Account]:
    """Accounts the user owns (by the visibility rule) or has a visible deal with."""
    q = owner_filter(user)
    if q == Q():
        return Account.objects.all()
    deal_q = owner_filter(user, "deals__owner")
    return Account.objects.filter(
        pk__in=Account.objects.filter(q | deal_q).values("pk")
    ).select_related("industry", "owner")


def visible_contacts(user: User) -> QuerySet[Contact]:
    q = owner_filter(user)
    if q == Q():
        return Contact.objects.all().select_related("account")
    deal_q = owner_filter(user, "deals__owner")
    return Contact.objects.filter(
        pk__in=Contact.objects.filter(q | deal_q).values("pk")
    ).select_related("account")
