"""The header's search box: leads, deals, accounts and contacts at once, grouped by kind.

Each kind is the list page's own visible set (crm.selectors.visible_*) searched the way that
list searches it, so a result here is one the list shows the user, and "more" opens that list
with the same term. Each kind shows its first PER_KIND matches in the list's order."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.db.models import Value
from django.db.models.functions import Concat
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from leakmap.crm import selectors
from leakmap.crm.text_search import containing

PER_KIND = 10
MAX_TERM = 100


@dataclass
class Group:
    kind: str
    title: str
    rows: list
    more_url: str
    has_more: bool


def _first(queryset, *order) -> tuple[list, bool]:
    rows = list(queryset.order_by(*order)[: PER_KIND + 1])
    return rows[:PER_KIND], len(rows) > PER_KIND


def search_groups(user, q: str) -> list[Group]:
    """The first matches of each kind `user` may see, in the order of that kind's list."""
    found = {
        "leads": _first(
            selectors.search(selectors.visible_leads(user), q, ("name", "company")),
            "-created_at",
            "-id",
        ),
        "deals": _first(
            containing(selectors.visible_deals(user), q, ("name", "account__name")).select_related(
                "account"
            ),
            "-created_at",
            "-id",
        ),
        "accounts": _first(
            containing(selectors.visible_accounts(user), q, ("name",)), "name", "id"
        ),
        # Sorted after one pass over the matches (contact_list's reason: walking the name
        # index reads every contact for a term no name has).
        "contacts": _first(
            selectors.search(selectors.visible_contacts(user), q, ("name",)),
            Concat("name", Value("")),
            "id",
        ),
    }
    titles = {
        "leads": (_("Leads"), "lead_list"),
        "deals": (_("Deals"), "deal_list"),
        "accounts": (_("Accounts"), "account_list"),
        "contacts": (_("Contacts"), "contact_list"),
    }
    query = urlencode({"q": q})
    return [
        Group(
            kind=kind,
            title=titles[kind][0],
            rows=rows,
            more_url=f"{reverse(titles[kind][1])}?{query}",
            has_more=has_more,
        )
        for kind, (rows, has_more) in found.items()
    ]


@login_required
@require_safe
def search(request):
    q = " ".join(request.GET.get("q", "").split())[:MAX_TERM]
    groups = search_groups(request.user, q) if q else []
    return render(
        request,
        "web/search.html",
        {
            "q": q,
            "groups": groups,
            "found": any(g.rows for g in groups),
            "per_kind": PER_KIND,
        },
    )
