"""Deals: kanban board, list, detail with stage history, edit, moves and closing lost."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leakmap.accounts.models import ListKind
from leakmap.analytics.base import unindexed
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Deal, LostReason, Stage, StageChange, StageKind
from leakmap.crm.rules import is_over_sla
from leakmap.crm.text_search import containing
from leakmap.web.forms import ActivityForm, DealFilterForm, DealForm, DealMoveForm, LostForm
from leakmap.web.move_forms import StageMoveForm
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


def board_context(
    request, error: str = "", moved: StageChange | None = None, undone: StageChange | None = None
) -> dict:
    """The kanban: stages, one GROUP BY for every column's count and amount, then a bounded
    number of cards per non-empty column (one LIMIT query each, served by the
    (stage, stage_entered_at) index, so the board costs the same at a thousand deals or a
    million).

    `moved` is the move just made (its card is shown in its column even past the column's
    limit, and the board offers to undo it); `undone` a move just taken back."""
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
        # Only what a card shows (its owner): PostgreSQL's planning time grows fast with the
        # visible set's joins and the account.
        column_deals = in_board.filter(stage=stage).select_related(None).select_related("owner")
        cards = list(column_deals.order_by(*order)[:CARDS_PER_COLUMN]) if total["n"] else []
        landed = moved or undone
        if landed is not None and landed.to_stage_id == stage.pk:
            # The card just moved stays in sight, past the column's limit if need be, where it
            # was dropped: a moved card behind "n more deals" looks lost.
            if all(card.pk != landed.deal_id for card in cards):
                cards += list(column_deals.filter(pk=landed.deal_id))
            for card in cards:
                card.just_moved = card.pk == landed.deal_id
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
        # Won and lost again, as drop zones that stay on screen however wide the board is.
        "closing_columns": [c for c in columns if not c["stage"].is_open],
        "error": error,
        "moved": moved,
        "undone": undone,
        "closed_window_days": CLOSED_WINDOW_DAYS,
        "query": _board_query(request),
    }


def _board_query(request) -> str:
    """The board's filters, as a query string: what a move answered with the board keeps."""
    query = request.GET.copy()
    for name in ("stage", "on_board"):
        query.pop(name, None)
    return query.urlencode()


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
    return render(
        request,
        "web/deals/detail.html",
        _detail_context(request, deal, undoable=_undoable_move(request, deal)),
    )


def _undoable_move(request, deal: Deal) -> StageChange | None:
    """The move named by `?moved=`, when it is still the deal's latest and the viewer made it:
    the page then offers to take it back."""
    moved = request.GET.get("moved", "")
    if not moved.isdigit():
        return None
    latest = deal.stage_changes.select_related("from_stage", "to_stage").order_by("-at", "-id")
    change = latest.first()
    if change is None or change.pk != int(moved) or change.by_id != request.user.pk:
        return None
    return change if change.from_stage_id is not None else None


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


def _on_board(request) -> bool:
    """A move made on the kanban answers with the board; one made on the deal's page with it."""
    return request.POST.get("on_board", request.GET.get("on_board")) == "1"


def _board_response(request, status: int = 200, **context) -> HttpResponse:
    """The re-rendered board in place of the old one, whatever element asked (a dialog inside
    the modal included), and the modal closed: the board is the answer to a finished move."""
    response = render(request, "web/deals/_board.html", board_context(request, **context))
    response.status_code = status
    response["HX-Retarget"] = "#board"
    response["HX-Reswap"] = "outerHTML"
    return response


def _refused(request, deal: Deal, error: str) -> HttpResponse:
    if _on_board(request) and is_htmx(request):
        return _board_response(request, status=422, error=error)
    messages.error(request, error)
    return _to_detail(request, deal)


def _to_detail(request, deal: Deal, moved: StageChange | None = None) -> HttpResponse:
    url = reverse("deal_detail", args=[deal.pk])
    if moved is not None:
        url += f"?moved={moved.pk}"
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _lost_form_response(request, deal: Deal) -> HttpResponse:
    """Closing lost needs a reason: the lost form, in the modal when htmx asked."""
    next_url = (
        reverse("deal_board") if _on_board(request) else reverse("deal_detail", args=[deal.pk])
    )
    if not is_htmx(request):
        # Without htmx the lost page goes back to the deal's page when done.
        return redirect("deal_lost", pk=deal.pk)
    response = render(
        request, "web/deals/_lost_form.html", _lost_context(request, deal, LostForm(), next_url)
    )
    response["HX-Retarget"] = "#modal-body"
    response["HX-Reswap"] = "innerHTML"
    return response


def _move_dialog(request, deal: Deal, form: StageMoveForm, status: int = 200) -> HttpResponse:
    """Ask what the move needs: the missing fields, the confirmation of a close. In the modal
    when htmx asked (over the board, which shows the card back where the server has it), as a
    page otherwise."""
    context = {
        "deal": deal,
        "stage": form.stage,
        "form": form,
        "on_board": _on_board(request),
        "query": _board_query(request),
        "modal": is_htmx(request),
    }
    if not is_htmx(request):
        return render(request, "web/deals/move.html", context, status=status)
    if _on_board(request) and request.method == "POST" and request.POST.get("dialog") != "1":
        # A drop: the board comes back as the server has it, and the question opens over it.
        context = board_context(request) | context | {"move_dialog": True, "move_form": form}
        response = render(request, "web/deals/_board.html", context, status=status)
        response["HX-Retarget"] = "#board"
        response["HX-Reswap"] = "outerHTML"
        return response
    response = render(request, "web/deals/_move_dialog.html", context, status=status)
    response["HX-Retarget"] = "#modal-body"
    response["HX-Reswap"] = "innerHTML"
    return response


@login_required
def deal_move(request, pk: int):
    """Move a deal to another stage, from the kanban or the deal's page.

    A move that needs something first asks for it, then moves in one step: the fields the
    stage requires and the deal lacks (exactly those), a confirmation when it closes the deal
    as won, the lost form when it closes it as lost. A GET asks without moving (a drop on the
    won column). From the kanban the answer is the re-rendered board, so counts and cards come
    from the database and a refused move shows the service's reason."""
    deal = _get_deal_for_change(request, pk)
    data = request.POST if request.method == "POST" else request.GET
    picked = DealMoveForm(data)
    if not picked.is_valid():
        return _refused(request, deal, _("Choose a stage."))
    stage = picked.cleaned_data["stage"]
    if stage.kind == StageKind.LOST:
        return _lost_form_response(request, deal)
    form = StageMoveForm(
        request.POST if request.POST.get("dialog") == "1" else None,
        stage=stage,
        missing=services.deal_missing_fields(deal=deal, stage=stage),
    )
    if request.method != "POST" or not form.is_bound:
        if form.fields or stage.kind == StageKind.WON:
            return _move_dialog(request, deal, form)
        form = StageMoveForm({}, stage=stage, missing=[])
    if not form.is_valid():
        return _move_dialog(request, deal, form, status=422)
    try:
        with transaction.atomic():
            moved = services.deal_move_with_fields(
                deal=deal,
                stage=stage,
                values=form.values(deal=deal, user=request.user),
                by=request.user,
            )
    except ValidationError as exc:
        if form.fields and set(exc.message_dict) & set(form.fields):
            apply_errors(form, exc)
            return _move_dialog(request, deal, form, status=422)
        return _refused(
            request, deal, " ".join(m for msgs in exc.message_dict.values() for m in msgs)
        )
    change = moved.stage_changes.order_by("-at", "-id").first()
    if _on_board(request) and is_htmx(request):
        return _board_response(request, moved=change)
    messages.success(request, _("Stage changed."))
    return _to_detail(request, deal, moved=change)


@login_required
@require_POST
def deal_undo_move(request, pk: int):
    """Take back the deal's latest move: a move back to the stage it left, recorded in the
    history like any move (crm.services.deal_undo_move). Back to lost asks for the reason."""
    deal = _get_deal_for_change(request, pk)
    change = (
        deal.stage_changes.select_related("from_stage")
        .filter(pk=request.POST.get("change") if request.POST.get("change", "").isdigit() else None)
        .first()
    )
    if change is None:
        return _refused(request, deal, _("Choose the move to undo."))
    if change.from_stage is not None and change.from_stage.kind == StageKind.LOST:
        return _lost_form_response(request, deal)
    try:
        moved = services.deal_undo_move(deal=deal, change=change, by=request.user)
    except ValidationError as exc:
        return _refused(
            request, deal, " ".join(m for msgs in exc.message_dict.values() for m in msgs)
        )
    back = moved.stage_changes.order_by("-at", "-id").first()
    if _on_board(request) and is_htmx(request):
        return _board_response(request, undone=back)
    messages.success(
        request, _("Move undone: the deal is back in “%(stage)s”.") % {"stage": back.to_stage.label}
    )
    return _to_detail(request, deal)


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
            change = deal.stage_changes.order_by("-at", "-id").first()
            if _on_board(request) and is_htmx(request):
                return _board_response(request, moved=change)
            messages.success(request, _("Deal closed as lost."))
            next_url = _safe_next(request)
            detail = reverse("deal_detail", args=[deal.pk])
            if next_url == detail or (next_url is None and not is_htmx(request)):
                return _to_detail(request, deal, moved=change)
            next_url = next_url or reverse("deal_board")
            if is_htmx(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = next_url
                return response
            return redirect(next_url)
    template = "web/deals/_lost_form.html" if is_htmx(request) else "web/deals/lost.html"
    next_url = request.GET.get("next") or request.POST.get("next", "")
    return render(
        request,
        template,
        _lost_context(request, deal, form, next_url),
        status=422 if form.errors else 200,
    )


def _safe_next(request) -> str | None:
    """Where to go after closing lost: a path on this site, or None."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return None


def _lost_context(request, deal: Deal, form: LostForm, next_url: str) -> dict:
    return {
        "deal": deal,
        "form": form,
        "lost_stage": Stage.objects.filter(pipeline=deal.pipeline, kind=StageKind.LOST).first(),
        "reasons_needing_competitor": list(
            LostReason.objects.filter(requires_competitor=True).values_list("pk", flat=True)
        ),
        "next": next_url,
        "modal": is_htmx(request),
        "on_board": _on_board(request),
        "query": _board_query(request),
    }


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
