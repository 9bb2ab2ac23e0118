"""Accounts and contacts: lists and detail pages with their deals."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Value
from django.db.models.functions import Concat
from django.shortcuts import get_object_or_404, render

from leakmap.accounts.models import ListKind
from leakmap.crm import selectors
from leakmap.crm.models import Account, Contact
from leakmap.crm.text_search import containing
from leakmap.web.forms import SearchForm
from leakmap.web.views import lists
from leakmap.web.views.common import Page


def _get_account_for_user(request, pk: int) -> Account:
    return get_object_or_404(selectors.visible_accounts(request.user), pk=pk)


def _get_contact_for_user(request, pk: int) -> Contact:
    return get_object_or_404(selectors.visible_contacts(request.user), pk=pk)


@login_required
def account_list(request):
    q = request.GET.get("q", "").strip()
    qs = selectors.visible_accounts(request.user).select_related("industry", "owner")
    if q:
        qs = containing(qs, q, ("name",))
    qs, sort = lists.sorted_list(qs, ListKind.ACCOUNT, request)
    page = lists.list_page(qs, sort, request)
    return render(
        request,
        "web/accounts/account_list.html",
        _list_context(request, ListKind.ACCOUNT, page, q, sort),
    )


def _list_context(request, kind: str, page: Page, q: str, sort: lists.Sort) -> dict:
    return {
        "page": page,
        "q": q,
        "form": SearchForm(request.GET or None, user=request.user),
        "filtered": lists.is_filtered(request),
        **lists.list_context(request, kind, sort),
    }


@login_required
def account_detail(request, pk: int):
    account = _get_account_for_user(request, pk)
    # Only the deals this user may see, even on an account they can open.
    deals = selectors.visible_deals(request.user).filter(account=account).order_by("-created_at")
    contacts = selectors.visible_contacts(request.user).filter(account=account).order_by("name")
    return render(
        request,
        "web/accounts/account_detail.html",
        {"account": account, "deals": deals[:100], "contacts": contacts[:100]},
    )


@login_required
def contact_list(request):
    q = request.GET.get("q", "").strip()
    qs = selectors.visible_contacts(request.user).select_related("account", "owner")
    if q:
        qs = selectors.search(qs, q, ("name",))
    qs, sort = lists.sorted_list(qs, ListKind.CONTACT, request)
    if q and sort.key == "name" and not sort.descending:
        # The matches sorted after one pass over the contacts: walking the name index instead
        # reads every contact's row for a term no name has.
        qs = qs.order_by(Concat("name", Value("")), "id")
    page = lists.list_page(qs, sort, request)
    return render(
        request,
        "web/accounts/contact_list.html",
        _list_context(request, ListKind.CONTACT, page, q, sort),
    )


@login_required
def contact_detail(request, pk: int):
    contact = _get_contact_for_user(request, pk)
    deals = selectors.visible_deals(request.user).filter(contact=contact).order_by("-created_at")
    return render(
        request, "web/accounts/contact_detail.html", {"contact": contact, "deals": deals[:100]}
    )
