"""Tasks: the planned follow-ups of a person or a team, as a list grouped by when they are due
and as a week calendar, and marking a task done.

A planned follow-up is either an open activity with a due time (a task the user or the
overdue-follow-up rule created) or an open deal's `next_follow_up`. When that rule has turned a
passed follow-up date into a task, the deal's date is the same plan: only the task is listed.

Reps see their own; managers and admins choose whose through the `who` filter, whose choices
are the people they may see (accounts.selectors.visible_users). Every read starts from the
visibility selectors, and marking done goes through crm.policy and crm.services.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from heapq import merge
from itertools import groupby

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from leakmap.accounts.models import Team, User
from leakmap.accounts.selectors import team_ids, visible_users
from leakmap.crm import policy, selectors, services
from leakmap.crm.models import Activity, ActivityKind, Deal, Stage, StageKind
from leakmap.web.views.common import PAGE_SIZE, Page, is_htmx, local_day_bounds, page_number

# Rows a group shows on the overview; "show all" pages through the rest.
GROUP_LIMIT = 20
# A calendar day shows this many follow-ups, the rest behind "N more" (a manager's team can
# plan dozens a day).
DAY_LIMIT = 8
# The most follow-ups a calendar week reads of each kind: a week that plans more is a team
# that should narrow the filter, and the page says so.
WEEK_LIMIT = 600

GROUPS = (
    ("overdue", gettext_lazy("Overdue")),
    ("today", gettext_lazy("Today")),
    ("week", gettext_lazy("Later this week")),
    ("later", gettext_lazy("Later")),
)
GROUP_LABELS = dict(GROUPS)
WEEK = re.compile(r"(\d{4})-W(\d{2})")


class BadFilter(ValueError):
    """A query parameter the page cannot honour; its message names what is wrong."""


@dataclass(frozen=True)
class Task:
    """One row of the list or one entry of the calendar: an activity, or a deal's planned
    follow-up."""

    due: dt.datetime
    activity: Activity | None = None
    deal: Deal | None = None

    @property
    def is_done(self) -> bool:
        return self.activity is not None and self.activity.done_at is not None

    @property
    def sort_key(self) -> tuple:
        return (self.due, self.activity is None, (self.activity or self.deal).pk)


# --- Whose tasks -----------------------------------------------------------------------------


def who_choices(user: User) -> list[tuple[str, str]]:
    """The `who` filter's options: the people (and for admins the teams) whose tasks `user`
    may see. A rep has none to choose: the page shows their own."""
    if not (user.is_manager or user.is_admin):
        return []
    choices = [("", _("Me"))]
    if user.is_manager:
        choices.append(("team", _("My whole team")))
    if user.is_admin:
        choices += [
            (f"team-{t.pk}", _("Team: %(team)s") % {"team": t.name})
            for t in Team.objects.order_by("name")
        ]
    people = visible_users(user).exclude(pk=user.pk).order_by("display_name", "username")
    choices += [(str(u.pk), str(u)) for u in people.only("pk", "username", "display_name")]
    return choices


def owner_ids(user: User, who: str) -> list[int]:
    """The owners `who` names, within those `user` may see; BadFilter for anything else."""
    if not who:
        return [user.pk]
    if who == "team" and user.is_manager:
        return team_ids(user)
    if who.startswith("team-") and user.is_admin and who[5:].isdigit():
        if Team.objects.filter(pk=who[5:]).exists():
            return list(User.objects.filter(team_id=who[5:]).values_list("pk", flat=True))
    elif who.isdigit() and (user.is_manager or user.is_admin):
        if visible_users(user).filter(pk=who).exists():
            return [int(who)]
    raise BadFilter(_("“Whose tasks” names no one whose tasks you may see."))


def planned_activities(user: User, owners: list[int]) -> QuerySet[Activity]:
    return (
        selectors.visible_activities(user)
        .filter(owner_id__in=owners)
        .select_related("deal", "lead", "owner")
    )


def planned_deals(user: User, owners: list[int]) -> QuerySet[Deal]:
    """Open deals of `owners` with a next follow-up that no open task already stands for."""
    same_plan = Activity.objects.filter(
        deal=OuterRef("pk"),
        done_at__isnull=True,
        kind=ActivityKind.TASK,
        due_at=OuterRef("next_follow_up"),
    )
    # The open stages as a list of ids, not a join on their kind: with the owners they make
    # ranges of the deal_report_cover index (owner, stage, …), so the closed deals, most of a
    # rep's, are never read.
    open_stages = list(Stage.objects.filter(kind=StageKind.OPEN).values_list("pk", flat=True))
    return (
        selectors.visible_deals(user)
        .filter(owner_id__in=owners, stage_id__in=open_stages, next_follow_up__isnull=False)
        .exclude(Exists(same_plan))
    )


# --- The list --------------------------------------------------------------------------------


def group_bounds(now: dt.datetime | None = None) -> dict[str, tuple]:
    """Each dated group's [start, end) in the install's time zone; None is open-ended. The
    week runs Monday to Sunday."""
    today = timezone.localdate(now) if now else timezone.localdate()
    start_of_today, start_of_tomorrow = local_day_bounds(today)
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    start_of_next_week = local_day_bounds(next_monday)[0]
    return {
        "overdue": (None, start_of_today),
        "today": (start_of_today, start_of_tomorrow),
        "week": (start_of_tomorrow, start_of_next_week),
        "later": (start_of_next_week, None),
    }


def _in(field: str, bounds: tuple) -> Q:
    start, end = bounds
    q = Q(**{f"{field}__isnull": False})
    if start is not None:
        q &= Q(**{f"{field}__gte": start})
    if end is not None:
        q &= Q(**{f"{field}__lt": end})
    return q


def group_counts(activities, deals, bounds: dict) -> dict[str, int]:
    """How many open tasks each group holds: one aggregate over each kind of row. The
    activities are read through the (owner, due_at) index from the first due time on: a rep's
    thousands of logged calls have none and are never read."""
    act = activities.filter(due_at__isnull=False, done_at__isnull=True).aggregate(
        **{g: Count("pk", filter=_in("due_at", bounds[g])) for g in bounds}
    )
    deal = deals.aggregate(
        **{g: Count("pk", filter=_in("next_follow_up", bounds[g])) for g in bounds}
    )
    return {g: act[g] + deal[g] for g in bounds}


def group_tasks(activities, deals, group: str, bounds: dict, *, limit: int) -> list[Task]:
    """The first `limit` open tasks of one group, soonest first, activities and deals merged."""
    acts = activities.filter(_in("due_at", bounds[group]), done_at__isnull=True)
    found = deals.filter(_in("next_follow_up", bounds[group]))
    return list(
        merge(
            [Task(a.due_at, activity=a) for a in acts.order_by("due_at", "pk")[:limit]],
            [
                Task(d.next_follow_up, deal=d)
                for d in found.order_by("next_follow_up", "pk")[:limit]
            ],
            key=lambda t: t.sort_key,
        )
    )[:limit]


def _who(request: HttpRequest) -> tuple[str, list[tuple[str, str]], list[int]]:
    user = request.user
    choices = who_choices(user)
    who = request.GET.get("who", "").strip()
    return who, choices, owner_ids(user, who)


def _refused(request: HttpRequest, template: str, message: str, context: dict) -> HttpResponse:
    return render(request, template, {**context, "filter_error": message}, status=400)


@require_GET
@login_required
def task_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    context: dict = {"groups": [], "now": timezone.now()}
    try:
        who, choices, owners = _who(request)
        group = request.GET.get("group", "")
        if group and group not in GROUP_LABELS:
            raise BadFilter(_("There is no group “%(group)s” of tasks.") % {"group": group})
    except BadFilter as exc:
        context.update(who="", who_choices=who_choices(user))
        return _refused(request, "web/activities/task_list.html", str(exc), context)
    context.update(who=who, who_choices=choices, show_owner=owners != [user.pk], group=group)
    activities, deals = planned_activities(user, owners), planned_deals(user, owners)
    bounds = group_bounds()
    counts = group_counts(activities, deals, bounds)
    context["total"] = sum(counts.values())
    if group:
        # Both kinds are read from the group's start to the page's end, then merged and
        # cut to the page: tasks are a person's or a team's, so pages stay few.
        number = max(page_number(request), 1)
        rows = group_tasks(activities, deals, group, bounds, limit=number * PAGE_SIZE + 1)
        page = Page(rows, number)
        context["page"] = page
        context["groups"] = [(group, GROUP_LABELS[group], counts[group], page.object_list)]
    else:
        context["groups"] = [
            (
                key,
                label,
                counts[key],
                group_tasks(activities, deals, key, bounds, limit=GROUP_LIMIT)
                if counts[key]
                else [],
            )
            for key, label in GROUPS
            if counts[key] or key in ("overdue", "today")
        ]
    context["group_limit"] = GROUP_LIMIT
    return render(request, "web/activities/task_list.html", context)


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("task_list")


@require_POST
@login_required
def task_done(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark an open activity done: a follow-up, so the deal's and lead's facts move with it."""
    activity = policy.record_for_change(
        request.user, selectors.visible_activities(request.user).select_related("deal", "lead"), pk
    )
    try:
        services.activity_complete(activity=activity)
    except ValidationError as exc:
        if is_htmx(request):
            return HttpResponse(" ".join(exc.messages), status=409)
        messages.error(request, " ".join(exc.messages))
        return _back(request)
    if is_htmx(request):
        return render(
            request, "web/activities/_task_done.html", {"task": Task(activity.due_at, activity)}
        )
    messages.success(request, _("Marked done: %(task)s") % {"task": activity})
    return _back(request)


# --- The week calendar -----------------------------------------------------------------------


def parse_week(value: str) -> dt.date:
    """The Monday of an ISO week written `YYYY-Www` (what <input type="week"> sends)."""
    match = WEEK.fullmatch(value.strip())
    try:
        if match is None:
            raise ValueError
        return dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise BadFilter(
            _("“%(value)s” is not a week: write it as year-W-week, for example %(example)s.")
            % {"value": value, "example": iso_week(timezone.localdate())}
        ) from None


def iso_week(day: dt.date) -> str:
    year, week, _weekday = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_tasks(activities, deals, monday: dt.date) -> tuple[list[Task], bool]:
    """The week's follow-ups in time order: activities due in it (done ones too, so a past
    week shows what happened) and open deals' planned dates; True when WEEK_LIMIT cut some."""
    start = local_day_bounds(monday)[0]
    end = local_day_bounds(monday + dt.timedelta(days=7))[0]
    acts = list(
        activities.filter(due_at__gte=start, due_at__lt=end).order_by("due_at", "pk")[
            : WEEK_LIMIT + 1
        ]
    )
    found = list(
        deals.filter(next_follow_up__gte=start, next_follow_up__lt=end)
        .select_related("owner")
        .order_by("next_follow_up", "pk")[: WEEK_LIMIT + 1]
    )
    cut = len(acts) > WEEK_LIMIT or len(found) > WEEK_LIMIT
    tasks = merge(
        [Task(a.due_at, activity=a) for a in acts[:WEEK_LIMIT]],
        [Task(d.next_follow_up, deal=d) for d in found[:WEEK_LIMIT]],
        key=lambda t: t.sort_key,
    )
    return list(tasks), cut


@require_GET
@login_required
def task_calendar(request: HttpRequest) -> HttpResponse:
    user = request.user
    today = timezone.localdate()
    context: dict = {"days": [], "today": today, "now": timezone.now()}
    try:
        who, choices, owners = _who(request)
        week = request.GET.get("week", "")
        monday = parse_week(week) if week else today - dt.timedelta(days=today.weekday())
    except BadFilter as exc:
        this_monday = today - dt.timedelta(days=today.weekday())
        context.update(
            who="",
            who_choices=who_choices(user),
            week=iso_week(this_monday),
            monday=this_monday,
            sunday=this_monday + dt.timedelta(days=6),
        )
        return _refused(request, "web/activities/calendar.html", str(exc), context)
    tasks, cut = week_tasks(planned_activities(user, owners), planned_deals(user, owners), monday)
    by_day = {
        day: list(rows) for day, rows in groupby(tasks, key=lambda t: timezone.localdate(t.due))
    }
    days = [monday + dt.timedelta(days=i) for i in range(7)]
    context.update(
        who=who,
        who_choices=choices,
        show_owner=owners != [user.pk],
        week=iso_week(monday),
        monday=monday,
        sunday=days[-1],
        previous_week=iso_week(monday - dt.timedelta(days=7)),
        next_week=iso_week(monday + dt.timedelta(days=7)),
        this_week=iso_week(today),
        is_this_week=monday <= today <= days[-1],
        cut=cut,
        week_limit=WEEK_LIMIT,
        days=[
            (day, len(rows), rows[:DAY_LIMIT], rows[DAY_LIMIT:])
            for day, rows in ((day, by_day.get(day, [])) for day in days)
        ],
        total=len(tasks),
    )
    return render(request, "web/activities/calendar.html", context)
