"""Deals: kanban board, list, detail with stage history, edit, moves and closing lost."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leakmap.accounts.models import ListKind
from leakmap.analytics.base import unindexed
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Deal, LostReason, Stage, StageKind
from leakmap.crm.rules import is_over_sla
from leakmap.crm.text_search import containing
from leakmap.web.forms import ActivityForm, DealFilterForm, DealForm, DealMoveForm, LostForm
from leakmap.web.views import lists
from leakmap.web.views.common import (
    apply_errors,
    filter_by_common_fields,
    is_htmx,
    list_download,
    without_page,
)

# Cards shown per kanban column; the rest are behind the column's "more" link (the list view).
CARDS_PER_COLUMN = 20
# Won/lost columns show what closed recently, not every deal ever closed.
CLOSED_WINDOW_DAYS = 30


def _get_deal_for_user(request, pk: int) -> Deal:
    """404 unless the deal is in the user's visible set (a guessed id reveals nothing)."""
    return get_object_or_404(selectors.visible_deals(request.user).select_related("contact"), pk=pk)


def _get_deal_for_change(request, pk: int) -> Deal:
    """As _get_deal_for_user, and 403 unless the user may change it (crm.policy)."""
    visible = selectors.visible_deals(request.user).select_related("contact")
    return policy.record_for_change(request.user, visible, pk)


def filter_deals(user, form: DealFilterForm):
    qs = selectors.visible_deals(user)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    if data.get("q"):
        q = data["q"].strip()
        qs = containing(qs, q, ("name", "account__name"))
    if data.get("stage"):
        qs = qs.filter(stage=data["stage"])
    return filter_by_common_fields(qs, data)


def _stages():
    return list(Stage.objects.filter(pipeline=services.default_pipeline()).order_by("order"))


def board_context(request, error: str = "") -> dict:
    """The kanban: stages, one GROUP BY for every column's count and amount, then a bounded
    number of cards per non-empty column (one LIMIT query each, served by the
    (stage, stage_entered_at) index, so the board costs the same at a thousand deals or a
    million)."""
    form = DealFilterForm(request.GET or None, user=request.user)
    form.fields.pop("stage")
    stages = _stages()
    now = timezone.now()
    since = now - dt.timedelta(days=CLOSED_WINDOW_DAYS)
    deals = filter_deals(request.user, form)
    # Closed columns only hold what closed in the window.
    in_board = deals.filter(stage__in=stages).filter(
        Q(closed_at__isnull=True) | Q(closed_at__gte=since)
    )
    # The totals as two ranges: the open stages' deals whole (an open deal has no closed_at —
    # the services clear it on reopening and the import refuses one), read from the
    # deal_stage_cover index alone, and the closed stages' recent closes from the closed_at
    # index. One scan of every deal took ~145 ms for an admin at a million leads.
    open_ids = [s.pk for s in stages if s.is_open]
    sums = {"n": Count("id"), "amount": Sum("amount")}
    open_totals = deals.filter(stage_id__in=open_ids).values("stage_id").annotate(**sums)
    # (The stage as `+ 0`, also in the GROUP BY: else SQLite walks a stage index in its order
    # over every deal to save the grouping's sort, instead of the closed_at range.)
    closed_totals = (
        deals.annotate(stage_plain=unindexed("stage_id"))
        .filter(closed_at__gte=since, stage_plain__in=[s.pk for s in stages if not s.is_open])
        .values("stage_plain")
        .annotate(**sums)
    )
    totals = {
        row["stage_id"]: row  # a UNION's rows take the first query's column names
        for row in open_totals.order_by().union(closed_totals.order_by(), all=True)
    }
    columns = []
    for stage in stages:
        total = totals.get(stage.pk, {"n": 0, "amount": 0})
        # An empty column (per the GROUP BY) needs no card query.
        # Open columns: longest in the stage first; won and lost: the latest closes first (the
        # index is then read from the recent end instead of past every older close).
        order = ("stage_entered_at", "id") if stage.is_open else ("-stage_entered_at", "-id")
        cards = (
            list(
                in_board.filter(stage=stage)
                # Only what a card shows (its owner): PostgreSQL's planning time grows fast
                # with the visible set's joins and the account.
                .select_related(None)
                .select_related("owner")
                .order_by(*order)[:CARDS_PER_COLUMN]
            )
            if total["n"]
            else []
        )
        for card in cards:
            entered = card.stage_entered_at or card.created_at
            card.days_in_stage = (now - entered).days
            card.over_sla = stage.is_open and is_over_sla(
                stage.sla_days, entered_at=entered, now=now
            )
        columns.append(
            {
                "stage": stage,
                "cards": cards,
                "count": total["n"],
                "amount": total["amount"] or 0,
                "more": total["n"] - len(cards),
            }
        )
    return {
        "form": form,
        "columns": columns,
        "error": error,
        "closed_window_days": CLOSED_WINDOW_DAYS,
        "query": request.GET.urlencode(),
    }


@login_required
def deal_board(request):
    return render(request, "web/deals/board.html", board_context(request))


@login_required
def deal_list(request):
    form = DealFilterForm(request.GET or None, user=request.user)
    qs, sort = lists.sorted_list(filter_deals(request.user, form), ListKind.DEAL, request)
    page = lists.list_page(qs, sort, request)
    return render(
        request,
        "web/deals/list.html",
        {
            "form": form,
            "page": page,
            "filtered": lists.is_filtered(request),
            "download_query": without_page(request),
            **lists.list_context(request, ListKind.DEAL, sort),
        },
    )


@login_required
def deal_export(request, fmt: str):
    """The deals the list shows for the same filters, every page of them, as CSV or XLSX; in
    the list's order when the user sorted it (else oldest first, the import's order)."""
    form = DealFilterForm(request.GET or None, user=request.user)
    deals = filter_deals(request.user, form)
    if lists.sort_of(ListKind.DEAL, request.GET.get("sort")).chosen:
        deals = lists.sorted_list(deals, ListKind.DEAL, request)[0]
    return list_download("deals", deals, fmt)


def _history(deal: Deal) -> list[dict]:
    """Stage history with the time spent in each entry (next entry, or now if still there)."""
    changes = list(
        deal.stage_changes.select_related("to_stage", "from_stage", "by").order_by("at", "id")
    )
    now = timezone.now()
    rows = []
    for i, change in enumerate(changes):
        until = changes[i + 1].at if i + 1 < len(changes) else None
        if until is None and change.to_stage.is_closed:
            duration = None  # a closed deal does not age in won/lost
        else:
            duration = ((until or now) - change.at).total_seconds() / 86400
        rows.append({"change": change, "until": until, "days": duration})
    return rows


def _detail_context(request, deal: Deal, **extra) -> dict:
    stages = _stages()
    return {
        "deal": deal,
        "now": timezone.now(),
        "history": _history(deal),
        "activities": deal.activities.select_related("owner").order_by("-created_at")[:50],
        "stages": stages,
        "activity_form": extra.pop("activity_form", None) or ActivityForm(),
        **extra,
    }


@login_required
def deal_detail(request, pk: int):
    deal = _get_deal_for_user(request, pk)
    return render(request, "web/deals/detail.html", _detail_context(request, deal))


@login_required
def deal_edit(request, pk: int):
    deal = _get_deal_for_change(request, pk)
    initial = {f: getattr(deal, f) for f in DealForm.base_fields} | {"owner": deal.owner_id}
    form = DealForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.deal_update(deal=deal, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Deal saved."))
            return redirect("deal_detail", pk=deal.pk)
    return render(
        request,
        "web/deals/form.html",
        {"form": form, "deal": deal},
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def deal_move(request, pk: int):
    """Move a deal to another stage. From the kanban (htmx) the answer is the re-rendered board,
    so a refused move shows the service's reason and the card is back where the server says it
    is; from the detail page it redirects back."""
    deal = _get_deal_for_change(request, pk)
    form = DealMoveForm(request.POST)
    error = ""
    if not form.is_valid():
        error = _("Choose a stage.")
    else:
        stage = form.cleaned_data["stage"]
        if stage.kind == StageKind.LOST:
            # Closing lost needs a reason; the lost form does that.
            return redirect("deal_lost", pk=deal.pk)
        try:
            services.deal_move(deal=deal, stage=stage, by=request.user)
        except ValidationError as exc:
            error = " ".join(m for msgs in exc.message_dict.values() for m in msgs)
    if is_htmx(request):
        return render(
            request,
            "web/deals/_board.html",
            board_context(request, error=error),
            status=422 if error else 200,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _("Stage changed."))
    return redirect("deal_detail", pk=deal.pk)


@login_required
def deal_lost(request, pk: int):
    """Close as lost: the reason is required, and the competitor when the reason names one."""
    deal = _get_deal_for_change(request, pk)
    form = LostForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.deal_close_lost(
                deal=deal,
                lost_reason=data["lost_reason"],
                competitor=data["competitor"],
                notes=data["notes"],
                by=request.user,
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Deal closed as lost."))
            if is_htmx(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = request.POST.get("next") or reverse("deal_board")
                return response
            return redirect("deal_detail", pk=deal.pk)
    template = "web/deals/_lost_form.html" if is_htmx(request) else "web/deals/lost.html"
    return render(
        request,
        template,
        {
            "deal": deal,
            "form": form,
            "lost_stage": Stage.objects.filter(pipeline=deal.pipeline, kind=StageKind.LOST).first(),
            "reasons_needing_competitor": list(
                LostReason.objects.filter(requires_competitor=True).values_list("pk", flat=True)
            ),
            "next": request.GET.get("next") or request.POST.get("next", ""),
            "modal": is_htmx(request),
        },
        status=422 if form.errors else 200,
    )


@login_required
@require_POST
def deal_log_activity(request, pk: int):
    deal = _get_deal_for_change(request, pk)
    form = ActivityForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.activity_log(
                services.ActivityInput(
                    owner=request.user,
                    kind=data["kind"],
                    deal=deal,
                    subject=data["subject"],
                    notes=data["notes"],
                    done_at=timezone.now(),
                    next_follow_up=data["next_follow_up"],
                )
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            deal = _get_deal_for_user(request, pk)
            form = ActivityForm()
            if not is_htmx(request):
                messages.success(request, _("Follow-up logged."))
                return redirect("deal_detail", pk=deal.pk)
    template = "web/deals/_activity.html" if is_htmx(request) else "web/deals/detail.html"
    return render(
        request,
        template,
        _detail_context(request, deal, activity_form=form),
        status=422 if form.errors else 200,
    )
