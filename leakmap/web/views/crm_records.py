"""Accounts and contacts: lists and detail pages with their deals."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Value
from django.db.models.functions import Concat
from django.shortcuts import get_object_or_404, render

from leakmap.crm import selectors
from leakmap.crm.models import Account, Contact
from leakmap.crm.text_search import containing
from leakmap.web.views.common import Page, page_number


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
    page = Page(qs.order_by("name", "id"), page_number(request))
    return render(request, "web/accounts/account_list.html", {"page": page, "q": q})


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
    by_name = "name"
    if q:
        qs = selectors.search(qs, q, ("name",))
        # The matches sorted after one pass over the contacts: walking the name index instead
        # reads every contact's row for a term no name has.
        by_name = Concat("name", Value(""))
    page = Page(qs.order_by(by_name, "id"), page_number(request))
    return render(request, "web/accounts/contact_list.html", {"page": page, "q": q})


@login_required
def contact_detail(request, pk: int):
    contact = _get_contact_for_user(request, pk)
    deals = selectors.visible_deals(request.user).filter(contact=contact).order_by("-created_at")
    return render(
        request, "web/accounts/contact_detail.html", {"contact": contact, "deals": deals[:100]}
    )
