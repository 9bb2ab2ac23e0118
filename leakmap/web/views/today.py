"""Today: what a rep should do now, and for a manager what needs their attention in the team."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone

from leakmap.accounts.selectors import owner_filter
from leakmap.analytics.stuck import stuck_now_q, stuck_reasons
from leakmap.crm import rules, selectors, services
from leakmap.crm.models import LeadStatus, Stage, StageKind
from leakmap.web.views.common import local_day_bounds

LIST_LIMIT = 25
FUNNEL_DAYS = 90


def needing_attention(deals, stages, now: dt.datetime, *, by_stage: bool = False) -> list:
    """The first LIST_LIMIT of `deals` that match the stuck rule (analytics.stuck), longest in
    their stage first, each told why (display only).

    Their ids come first, then their rows: asked for whole at once, SQLite looked up every open
    deal's row before sorting.

    by_stage, for `deals` that no owner narrows (an admin's team list): the ids are the first
    LIST_LIMIT of each open stage, each walked in the deal_stage_cover index's order (stage,
    stage_entered_at), merged here. Asked for across the stages at once, PostgreSQL read and
    sorted every open deal of the company. A rep's or a team's deals are found from the owner
    indexes at once; a query per stage would only cost them."""
    rule = stuck_now_q(stages, now)
    if by_stage:
        open_ids = Stage.objects.filter(kind=StageKind.OPEN).values_list("pk", flat=True)
        firsts = []
        for stage_id in open_ids:
            firsts += (
                deals.filter(rule, stage_id=stage_id)
                .order_by("stage_entered_at")
                .values_list("stage_entered_at", "pk")[:LIST_LIMIT]
            )
        # In the database's order, where a deal without a stage entry time sorts too.
        nulls_last = connection.features.nulls_order_largest
        firsts.sort(key=lambda row: ((row[0] is None) == nulls_last, row[0] or now, row[1]))
        first = [pk for _, pk in firsts[:LIST_LIMIT]]
    else:
        first = list(
            deals.filter(rule)
            .order_by("stage_entered_at")
            .values_list("pk", flat=True)[:LIST_LIMIT]
        )
    rows = list(deals.filter(pk__in=first).order_by("stage_entered_at"))
    for d in rows:
        for key, value in stuck_reasons(d, now).items():
            setattr(d, key, value)
    return rows


def current_over_sla_q(stages, now: dt.datetime) -> Q:
    """crm.rules' over-SLA test on the deals' current stage: open, and in that stage strictly
    longer than its SLA. One term per open stage of `stages` with an SLA, each on the (stage,
    stage_entered_at) index."""
    q = Q(pk__in=[])
    for stage in stages:
        if stage.kind == StageKind.OPEN and stage.sla_days is not None:
            q |= Q(stage_id=stage.pk) & rules.over_sla_q("stage_entered_at", now, stage.sla_days)
    return q


def over_sla_deals(deals, stages, now: dt.datetime) -> tuple[list, int]:
    """The first LIST_LIMIT of `deals` over their stage's SLA, longest in the stage first, each
    told why (display only), and how many there are in all (counted only past the list)."""
    over = deals.filter(current_over_sla_q(stages, now))
    rows = list(
        over.select_related("stage", "account").order_by("stage_entered_at", "pk")[:LIST_LIMIT]
    )
    count = len(rows) if len(rows) < LIST_LIMIT else over.count()
    for d in rows:
        for key, value in stuck_reasons(d, now).items():
            setattr(d, key, value)
    return rows, count


@login_required
def today(request):
    user = request.user
    now = timezone.now()
    _, end_of_today = local_day_bounds()
    stages = list(Stage.objects.filter(pipeline=services.default_pipeline()).order_by("order"))
    tasks = (
        selectors.visible_activities(user)
        .filter(owner=user, done_at__isnull=True, due_at__lt=end_of_today)
        .order_by("due_at")[:LIST_LIMIT]
    )
    mine = selectors.visible_deals(user).filter(owner=user)
    follow_ups = (
        mine.filter(stage__kind=StageKind.OPEN, next_follow_up__lt=end_of_today)
        .select_related("account")
        .order_by("next_follow_up")[:LIST_LIMIT]
    )
    attention = needing_attention(mine, stages, now)
    over_sla, over_sla_count = over_sla_deals(mine, stages, now)
    new_leads = (
        selectors.visible_leads(user)
        .filter(owner=user, status=LeadStatus.NEW)
        .order_by("-created_at")[:LIST_LIMIT]
    )
    context = {
        "now": now,
        "tasks": tasks,
        "follow_ups": follow_ups,
        "attention": attention,
        "over_sla": over_sla,
        "over_sla_count": over_sla_count,
        "new_leads": new_leads,
        "is_lead": user.is_manager or user.is_admin,
        "list_limit": LIST_LIMIT,
    }
    if context["is_lead"]:
        # The team's funnel for the last 90 days, from the analytics engine (same figures as the
        # funnel report), so a manager sees where this quarter's deals stop.
        # Counts and amounts only: the page shows no median days, so their query is skipped.
        from leakmap.analytics import ReportFilters
        from leakmap.analytics.base import load_stages
        from leakmap.analytics.filters import resolve
        from leakmap.analytics.funnel import funnel_rows

        today_local = timezone.localdate()
        scope = resolve(
            ReportFilters(
                date_from=today_local - dt.timedelta(days=FUNNEL_DAYS),
                date_to=today_local,
                viewer=user,
            )
        )
        # Leads no rule or form gave an owner (web forms without one): a manager hands them out.
        context["unassigned_leads"] = (
            selectors.visible_leads(user)
            .filter(owner__isnull=True, status=LeadStatus.NEW)
            .order_by("-created_at")[:LIST_LIMIT]
        )
        context["funnel"] = funnel_rows(scope, load_stages(), with_medians=False)
        context["funnel_days"] = FUNNEL_DAYS
        context["funnel_from"] = (today_local - dt.timedelta(days=FUNNEL_DAYS)).isoformat()
        context["team_attention"] = needing_attention(
            selectors.visible_deals(user).exclude(owner=user),
            stages,
            now,
            by_stage=owner_filter(user) == Q(),  # the whole company's deals
        )
    return render(request, "web/today.html", context)
