"""Every read list of the funnel's record, filtered by who is asking.

A rep sees their own leads, deals and activities; a manager their team's; an admin all.
Views, exports, the API and report filters all start from these, so a guessed URL or id finds
nothing it should not (the caller turns "not in the visible set" into a 404).
"""

from __future__ import annotations

import re

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from leakmap.accounts.models import User
from leakmap.accounts.selectors import owner_filter
from leakmap.crm.models import Account, Activity, Contact, Deal, Lead
from leakmap.crm.text_search import containing, few_containing


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
    return _owned_or_dealt_with(Account, user, "account_id").select_related("industry", "owner")


def visible_contacts(user: User) -> QuerySet[Contact]:
    """Contacts the user owns (by the visibility rule) or has a visible deal with."""
    return _owned_or_dealt_with(Contact, user, "contact_id").select_related("account")


def _owned_or_dealt_with(model, user: User, column: str) -> QuerySet:
    """The rows of `model` the user owns, or that the deals the user may see name in `column`,
    as one set of ids: `owner = me OR id IN (my deals' …)` left PostgreSQL, which cannot
    tell how many rows such an OR keeps, walking every contact in name order for a page of a
    rep's."""
    q = owner_filter(user)
    if q == Q():
        return model.objects.all()
    owned = model.objects.filter(q).order_by().values("pk")
    return model.objects.filter(pk__in=owned.union(_of_visible_deals(user, column)))


def _of_visible_deals(user: User, column: str) -> QuerySet:
    """`column` of the deals the user may see, as a subquery read through the deals' owner
    index. Joined to every deal instead (LEFT JOIN deals … WHERE owner = me OR deal owner =
    me), SQLite read every deal for a rep's accounts; a
    manager's "or unassigned" matched every record without any deal through that join."""
    return (
        Deal.objects.filter(owner_filter(user, owner_required=True), **{f"{column}__isnull": False})
        .order_by()
        .values(column)
    )


# A phone number as people type it: digits with +, spaces, dashes or brackets.
PHONE = re.compile(r"\+?[\d\s()-]*")


def looks_like_phone(q: str) -> bool:
    """A phone number of five digits or more (fewer could be part of a name like "58同城")."""
    return bool(PHONE.fullmatch(q)) and sum(c.isdigit() for c in q) >= 5


def email_is(queryset: QuerySet, address: str) -> QuerySet:
    """The rows whose e-mail is `address`, ignoring case, through the lower(email) index
    (Django's iexact is a LIKE on SQLite, which no index serves: a scan of every lead)."""
    return queryset.alias(email_lower=Lower("email")).filter(email_lower=address.strip().lower())


# Part of an e-mail address: no space, ASCII, three characters or more, with an "@" or a dot
# ("example.com", "@acme"). Part of a phone: three digits or more ("138001", "8000").
EMAIL_PART = re.compile(r"[\x21-\x7e]*[@.][\x21-\x7e]*")
PHONE_PART_DIGITS = 3
WHOLE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# With more matches than this a partial term counts as common (crm.text_search's rule).
PARTIAL_PROBE = 500


def search(queryset: QuerySet, q: str, text_fields: tuple[str, ...]) -> QuerySet:
    """A list's search box. An e-mail address or a phone number finds its record through its
    index (a customer on the phone: ~10 ms instead of a scan of a million leads); other text
    is a substring of `text_fields`, found through the text index (crm.text_search).

    On records with a phone and an e-mail (leads, contacts), part of one finds them too: a
    run of digits is also looked for inside phones, and a term with an "@" or a dot inside
    e-mail addresses: a phone-like term when no record has that whole number, an address
    only when it is not a whole one."""
    q = q.strip()
    has_contact = _has_contact_columns(queryset.model)
    if "@" in q and " " not in q:
        # A whole address is looked up (an index); part of one ("zw@", "@acme") is looked for.
        if not has_contact or WHOLE_EMAIL.fullmatch(q):
            return email_is(queryset, q)
        return queryset.filter(_partial_q(queryset, "email", q))
    if looks_like_phone(q):
        exact = queryset.filter(phone=q)
        if not has_contact or exact.exists():
            return exact
    found = containing(queryset, q, text_fields)
    if not has_contact:
        return found
    if PHONE.fullmatch(q) and sum(c.isdigit() for c in q) >= PHONE_PART_DIGITS:
        partial = _partial_q(queryset, "phone", q)
    elif len(q) >= 3 and EMAIL_PART.fullmatch(q):
        partial = _partial_q(queryset, "email", q)
    else:
        return found
    if "pk__in" not in dict(partial.children):
        return found | queryset.filter(partial)  # a common part: the ordered walk meets it
    # Few rows hold the part: one list of ids with the names' matches when those are few too.
    # `pk IN (a) OR pk IN (b)` led SQLite to walk the list's order over every row instead.
    named = list(found.order_by().values_list("pk", flat=True)[: PARTIAL_PROBE + 1])
    if len(named) > PARTIAL_PROBE:
        return found | queryset.filter(partial)
    return queryset.filter(pk__in={*named, *dict(partial.children)["pk__in"]})


def _has_contact_columns(model) -> bool:
    names = {f.name for f in model._meta.get_fields()}
    return {"phone", "email"} <= names


def _partial_q(queryset: QuerySet, column: str, q: str) -> Q:
    """`q` inside `column` (a phone or an e-mail), ignoring case: a rare part gives the ids
    the text index holds it in (crm.text_search, migration 0029); a common one (every
    generated address ends in example.com) its condition, which the caller's ordered walk
    meets early."""
    ids = few_containing(queryset.model, q, (column,))
    if ids is None:
        return Q(**{f"{column}__icontains": q})
    return Q(pk__in=ids)
