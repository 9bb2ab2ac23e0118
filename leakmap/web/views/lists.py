"""What the four record lists share: sortable columns, saved views, bulk actions.

Sorting: `?sort=KEY` or `?sort=-KEY` (descending), KEY one of the list's SORTS; anything else
is the list's default order. Every order ends with the id in the same direction, so that
paging through equal values neither repeats nor skips a row. Empty values come last in both
directions, on SQLite and PostgreSQL alike (they disagree by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from leakmap.accounts import selectors as account_selectors
from leakmap.accounts import services as account_services
from leakmap.accounts.models import ListKind, SavedView
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Stage
from leakmap.web.forms import DATETIME, PersonChoiceField, QuickSelect
from leakmap.web.views.common import PAGE_SIZE, Page, page_number

# The owner as the pages name them (User.__str__): the display name, else the username.
OWNER_NAME = Coalesce(NullIf("owner__display_name", Value("")), "owner__username")

# Per list: sort key → the expression it orders by. Only these reach ORDER BY.
SORTS = {
    ListKind.LEAD: {
        "name": F("name"),
        "company": F("company"),
        "source": F("source__name"),
        "status": F("status"),
        "owner": OWNER_NAME,
        "budget": F("budget"),
        "created": F("created_at"),
    },
    ListKind.DEAL: {
        "name": F("name"),
        "account": F("account__name"),
        "stage": F("stage__order"),
        "amount": F("amount"),
        "owner": OWNER_NAME,
        "source": F("source__name"),
        "expected_close": F("expected_close_date"),
        "next_follow_up": F("next_follow_up"),
        "created": F("created_at"),
    },
    ListKind.ACCOUNT: {
        "name": F("name"),
        "industry": F("industry__name"),
        "owner": OWNER_NAME,
        "created": F("created_at"),
    },
    ListKind.CONTACT: {
        "name": F("name"),
        "account": F("account__name"),
        "title": F("title"),
        "email": F("email"),
    },
}
DEFAULT_SORT = {
    ListKind.LEAD: "-created",
    ListKind.DEAL: "-created",
    ListKind.ACCOUNT: "name",
    ListKind.CONTACT: "name",
}
LIST_URLS = {
    ListKind.LEAD: "lead_list",
    ListKind.DEAL: "deal_list",
    ListKind.ACCOUNT: "account_list",
    ListKind.CONTACT: "contact_list",
}
# Parameters of a list's address that are not filters: the page, and the sort.
NOT_FILTERS = ("page", "sort")


@dataclass(frozen=True)
class Sort:
    key: str
    descending: bool
    chosen: bool  # the user asked for it (else the list's default)

    @property
    def param(self) -> str:
        return f"-{self.key}" if self.descending else self.key


def sort_of(kind: str, value: str | None) -> Sort:
    value = (value or "").strip()
    key = value.removeprefix("-")
    if key in SORTS[kind]:
        return Sort(key, value.startswith("-"), True)
    default = DEFAULT_SORT[kind]
    return Sort(default.removeprefix("-"), default.startswith("-"), False)


def order_by(kind: str, sort: Sort) -> tuple:
    expression = SORTS[kind][sort.key]
    if sort.descending:
        return expression.desc(nulls_last=True), F("id").desc()
    return expression.asc(nulls_last=True), F("id").asc()


def sorted_list(queryset, kind: str, request: HttpRequest):
    """The list's queryset in the order the request asks for, and that Sort."""
    sort = sort_of(kind, request.GET.get("sort"))
    return queryset.order_by(*order_by(kind, sort)), sort


class SortedPage(Page):
    """One page of a list sorted by a column, in two queries: the page's ids in the chosen
    order, then those rows with their joins. Sorting the whole joined rows made the database
    carry every row's columns and joins through the sort: at 100k leads an admin's list by
    name took ~550 ms in SQLite that way against ~50 ms for the ids alone (no index serves
    most columns; the default orders are served by indexes and stay one query)."""

    def __init__(self, queryset, number: int, size: int = PAGE_SIZE):
        self.number = max(number, 1)
        offset = (self.number - 1) * size
        ids = list(queryset.values_list("pk", flat=True)[offset : offset + size + 1])
        self.has_next = len(ids) > size
        ids = ids[:size]
        rows = queryset.order_by().in_bulk(ids) if ids else {}
        self.object_list = [rows[pk] for pk in ids]
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1
        self.start_index = offset + 1 if self.object_list else 0
        self.end_index = offset + len(self.object_list)


def list_page(queryset, sort: Sort, request: HttpRequest) -> Page:
    """The page the request asks for, of a queryset already in `sort`'s order."""
    page_class = SortedPage if sort.chosen else Page
    return page_class(queryset, page_number(request))


def is_filtered(request: HttpRequest) -> bool:
    return any(request.GET.get(k) for k in request.GET if k not in NOT_FILTERS)


def list_context(request: HttpRequest, kind: str, sort: Sort) -> dict:
    """What every list template needs besides its rows: the sort, the saved views, the
    query to save as a view, and where a bulk action returns to."""
    query = request.GET.copy()
    query.pop("page", None)
    bulk_form = BulkForm(user=request.user, kind=kind)
    return {
        "bulk_form": bulk_form,
        "bulk_actions": [value for value, _label in bulk_form.fields["action"].choices],
        "bulk_url": f"{kind}_bulk",
        "view_create_url": f"{kind}_view_create",
        "sort": sort,
        "list_kind": kind,
        "saved_views": list(account_selectors.visible_saved_views(request.user, kind)),
        "view_query": query.urlencode(),
        "can_share_views": request.user.is_admin
        or (request.user.is_manager and request.user.team_id is not None),
    }


def list_again(request: HttpRequest, kind: str, query: str, status: int):
    """A refused write from a list answers with the list itself (filters and sort as they
    were, the message on top) and a 4xx status. The address stays the action's, whose GET
    leads back to the list, so the page's relative links keep working."""
    from leakmap.web.views import crm_records, deals, leads

    view = {
        ListKind.LEAD: leads.lead_list,
        ListKind.DEAL: deals.deal_list,
        ListKind.ACCOUNT: crm_records.account_list,
        ListKind.CONTACT: crm_records.contact_list,
    }[kind]
    request.GET = QueryDict(query)
    response = view(request)
    response.status_code = status
    return response


def _back_to_list(kind: str, query: str = ""):
    url = reverse(LIST_URLS[kind])
    return redirect(f"{url}?{query}" if query else url)


def _safe_query(value: str) -> str:
    """A query string to go back to; anything that could name another address is dropped."""
    return "" if value.startswith(("/", "\\", "http")) or "//" in value else value


# --- Saved views ---------------------------------------------------------------------------------


def _filter_form(kind: str, data: QueryDict, user) -> forms.Form:
    from leakmap.web.forms import DealFilterForm, LeadFilterForm, SearchForm

    form_class = {
        ListKind.LEAD: LeadFilterForm,
        ListKind.DEAL: DealFilterForm,
        ListKind.ACCOUNT: SearchForm,
        ListKind.CONTACT: SearchForm,
    }[kind]
    return form_class(data, user=user)


def clean_view_query(kind: str, query: str, user) -> str:
    """A view's query as it will be saved: only the list's filters (valid for this user) and a
    known sort; the page is dropped. Anything else is refused, naming it."""
    data = QueryDict(query, mutable=True)
    data.pop("page", None)
    form = _filter_form(kind, data, user)
    allowed = set(form.fields) | {"sort"}
    unknown = sorted(k for k in data if k not in allowed)
    if unknown:
        raise ValidationError(
            {"query": _("The list has no filter “%(names)s”.") % {"names": "”, “".join(unknown)}}
        )
    sort = data.get("sort")
    if sort and sort.removeprefix("-") not in SORTS[kind]:
        raise ValidationError({"query": _("The list cannot be sorted by “%(s)s”.") % {"s": sort}})
    if not form.is_valid():
        problems = [
            f"{form.fields[f].label}: {' '.join(e)}" if f in form.fields else " ".join(e)
            for f, e in form.errors.items()
        ]
        raise ValidationError({"query": problems})
    kept = [(k, v) for k in data for v in data.getlist(k) if v != ""]
    return urlencode(kept)


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=100, label=gettext_lazy("View name"))
    query = forms.CharField(required=False, max_length=1000)
    share = forms.BooleanField(required=False)


def saved_view_create(request, kind: str):
    """POST: save the list's current filters and sort under a name. GET: the list."""
    if request.method != "POST":
        return _back_to_list(kind, request.GET.urlencode())
    form = SavedViewForm(request.POST)
    query = _safe_query(request.POST.get("query", ""))
    try:
        if not form.is_valid():
            raise ValidationError(
                [f"{form.fields[f].label}: {' '.join(e)}" for f, e in form.errors.items()]
            )
        data = form.cleaned_data
        query = clean_view_query(kind, data["query"], request.user)
        view = account_services.saved_view_save(
            owner=request.user, kind=kind, name=data["name"], query=query, share=data["share"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return list_again(request, kind, query, 422)
    messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
    return _back_to_list(kind, view.query)


@login_required
def lead_view_create(request):
    return saved_view_create(request, ListKind.LEAD)


@login_required
def deal_view_create(request):
    return saved_view_create(request, ListKind.DEAL)


@login_required
def account_view_create(request):
    return saved_view_create(request, ListKind.ACCOUNT)


@login_required
def contact_view_create(request):
    return saved_view_create(request, ListKind.CONTACT)


@login_required
@require_POST
def saved_view_delete(request, pk: int):
    """Only the view's owner deletes it; a view shared with them is not theirs to delete."""
    view = get_object_or_404(SavedView, pk=pk, owner=request.user)
    kind, name = view.kind, view.name
    account_services.saved_view_delete(view=view)
    messages.success(request, _("View “%(name)s” deleted.") % {"name": name})
    return _back_to_list(kind)


# --- Bulk actions --------------------------------------------------------------------------------


class BulkForm(forms.Form):
    """One bulk action over the ticked rows (`ids`, read by the view: they are only
    candidates, fetched from the user's visible set and checked by the services against
    crm.policy)."""

    ACTIONS = [
        ("assign", gettext_lazy("Assign owner")),
        ("stage", gettext_lazy("Move to stage")),
        ("follow_up", gettext_lazy("Set next follow-up")),
        ("delete", gettext_lazy("Delete")),
    ]
    action = forms.ChoiceField(label=gettext_lazy("Action"), choices=ACTIONS)
    owner = PersonChoiceField(queryset=None, required=False, label=gettext_lazy("Owner"))
    stage = forms.ModelChoiceField(
        queryset=None, required=False, label=gettext_lazy("Stage"), widget=QuickSelect
    )
    due_at = forms.DateTimeField(
        required=False, label=gettext_lazy("Next follow-up"), widget=DATETIME
    )

    def __init__(self, *args, user, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = policy.assignable_users(user)
        self.fields["owner"].empty_label = _("Choose an owner")
        if kind in (ListKind.ACCOUNT, ListKind.CONTACT):
            # Neither has a stage or a follow-up date of its own.
            self.fields["action"].choices = [
                c for c in self.ACTIONS if c[0] in ("assign", "delete")
            ]
        if kind == ListKind.DEAL:
            self.fields["stage"].queryset = Stage.objects.filter(pipeline__is_default=True).exclude(
                kind="lost"
            )
            self.fields["stage"].empty_label = _("Choose a stage")
        else:
            del self.fields["stage"]
            if kind == ListKind.LEAD:
                self.fields["action"].choices = [c for c in self.ACTIONS if c[0] != "stage"]


def _visible(kind: str, user):
    return {
        ListKind.LEAD: selectors.visible_leads,
        ListKind.DEAL: selectors.visible_deals,
        ListKind.ACCOUNT: selectors.visible_accounts,
        ListKind.CONTACT: selectors.visible_contacts,
    }[kind](user)


def _selected_ids(request) -> list[int]:
    try:
        ids = sorted({int(v) for v in request.POST.getlist("ids")})
    except ValueError:
        ids = []
    if not ids:
        raise ValidationError(_("Select at least one row."))
    return ids


def _run_bulk(request, kind: str, form: BulkForm) -> str:
    """The action the form asks for; the success message. Raises the refusal."""
    if not form.is_valid():
        raise ValidationError(
            [f"{form.fields[f].label}: {' '.join(e)}" for f, e in form.errors.items()]
        )
    ids = _selected_ids(request)
    records = list(_visible(kind, request.user).filter(pk__in=ids).order_by("id"))
    if len(records) != len(ids):
        # A row the user may not see is refused as if it did not exist.
        raise ValidationError(_("Nothing was changed: some of the selected rows do not exist."))
    data, actor = form.cleaned_data, request.user
    action = data["action"]
    if action == "assign":
        if data["owner"] is None:
            raise ValidationError(_("Choose an owner."))
        n = services.records_bulk_assign(actor=actor, records=records, owner=data["owner"])
        return _("%(n)s record(s) given to %(owner)s.") % {"n": n, "owner": data["owner"]}
    if action == "stage":
        if data.get("stage") is None:
            raise ValidationError(_("Choose a stage."))
        n = services.deals_bulk_move(actor=actor, deals=records, stage=data["stage"])
        return _("%(n)s deal(s) moved to “%(stage)s”.") % {"n": n, "stage": data["stage"].label}
    if action == "follow_up":
        if data["due_at"] is None:
            raise ValidationError(_("Choose when to follow up."))
        n = services.records_bulk_follow_up(actor=actor, records=records, due_at=data["due_at"])
        return _("Next follow-up set on %(n)s record(s).") % {"n": n}
    n = services.records_bulk_delete(actor=actor, records=records)
    return _("%(n)s record(s) deleted.") % {"n": n}


def bulk_action(request, kind: str):
    """POST: apply the action to the ticked rows, then back to the list as it was (a refusal:
    the list with the reason, 403 or 422). GET: the list."""
    if request.method != "POST":
        return _back_to_list(kind, request.GET.urlencode())
    back = _safe_query(request.POST.get("back", ""))
    form = BulkForm(request.POST, user=request.user, kind=kind)
    try:
        done = _run_bulk(request, kind, form)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return list_again(request, kind, back, 403)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return list_again(request, kind, back, 422)
    messages.success(request, done)
    return _back_to_list(kind, back)


@login_required
def lead_bulk(request):
    return bulk_action(request, ListKind.LEAD)


@login_required
def deal_bulk(request):
    return bulk_action(request, ListKind.DEAL)


@login_required
def account_bulk(request):
    return bulk_action(request, ListKind.ACCOUNT)


@login_required
def contact_bulk(request):
    return bulk_action(request, ListKind.CONTACT)
