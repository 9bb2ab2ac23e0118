"""Today: what a rep should do now, and for a manager what needs their attention in the team."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from leakmap.analytics.stuck import stuck_now_q, stuck_reasons
from leakmap.crm import selectors, services
from leakmap.crm.models import LeadStatus, Stage, StageKind
from leakmap.web.views.common import local_day_bounds

LIST_LIMIT = 25
FUNNEL_DAYS = 90


def needing_attention(deals, stages, now: dt.datetime) -> list:
    """The first LIST_LIMIT of `deals` that match the stuck rule (analytics.stuck), longest in
    their stage first, each told why (display only). Their ids come first, from the
    deal_stage_cover index alone, then their rows: asked for whole at once, SQLite looked up
    every open deal's row before sorting (an admin's team list: ~100 -> ~1 ms at a million
    leads)."""
    first = (
        deals.filter(stuck_now_q(stages, now))
        .order_by("stage_entered_at")
        .values_list("pk", flat=True)[:LIST_LIMIT]
    )
    rows = list(deals.filter(pk__in=list(first)).order_by("stage_entered_at"))
    for d in rows:
        for key, value in stuck_reasons(d, now).items():
            setattr(d, key, value)
    return rows


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
        context["funnel"] = funnel_rows(scope, load_stages(), with_medians=False)
        context["funnel_days"] = FUNNEL_DAYS
        context["funnel_from"] = (today_local - dt.timedelta(days=FUNNEL_DAYS)).isoformat()
        context["team_attention"] = needing_attention(
            selectors.visible_deals(user).exclude(owner=user), stages, now
        )
    return render(request, "web/today.html", context)
