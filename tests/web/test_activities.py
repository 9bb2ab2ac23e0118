"""Tasks and the week calendar through Django's test client: groups by local day, whose tasks
each role may see, marking done through the service, and refusals that name what is wrong.

The clock reads Wednesday 2026-12-09 10:00 in Shanghai (the install's time zone): this week is
Monday 12-07 … Sunday 12-13."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.test import Client
from django.utils import timezone

from leakmap.crm import services
from leakmap.crm.models import Activity, Deal
from leakmap.web.views.activities import GROUP_LIMIT
from leakmap.web.views.common import PAGE_SIZE
from tests.factories import LeadFactory, make_deal

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 9, 10, 0, tzinfo=SHANGHAI)
HX = {"HTTP_HX_REQUEST": "true"}


def local(day: int, hour: int, minute: int = 0, month: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def clock(monkeypatch, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    settings.LANGUAGE_CODE = "en"
    monkeypatch.setattr(timezone, "now", lambda: NOW.astimezone(dt.UTC))
    return NOW


def task(owner, subject: str, due: dt.datetime | None, *, deal=None, lead=None, kind="task"):
    if deal is None and lead is None:
        lead = LeadFactory(owner=owner)
    return services.activity_log(
        services.ActivityInput(
            owner=owner, kind=kind, deal=deal, lead=lead, subject=subject, due_at=due
        )
    )


def rows(response) -> dict[str, list[str]]:
    """Each group's rows as their subjects (activities) or deal names (follow-ups)."""
    return {
        key: [t.activity.subject if t.activity else t.deal.name for t in tasks]
        for key, _label, _count, tasks in response.context["groups"]
    }


def counts(response) -> dict[str, int]:
    return {key: count for key, _label, count, _tasks in response.context["groups"]}


# --- The list --------------------------------------------------------------------------------


def test_it_groups_a_reps_open_tasks_by_local_day(login, rep, teammate):
    deal = make_deal(owner=rep, name="云帆 ERP", next_follow_up=local(9, 9))
    task(rep, "逾期回访", local(5, 14))
    task(rep, "今天下午", local(9, 15), deal=deal)
    # 23:30 on Wednesday in Shanghai is 15:30 UTC: still today, not tomorrow.
    task(rep, "今晚", local(9, 23, 30))
    task(rep, "周五演示", local(11, 10))
    # Sunday night is this week; Monday just after midnight is next week.
    task(rep, "周日", local(13, 23))
    task(rep, "下周一", local(14, 0, 30))
    task(rep, "待定", None)  # no due time: not planned
    done = task(rep, "已完成", local(9, 8))
    services.activity_complete(activity=done)
    task(rep, "一条笔记", None, kind="note")  # an undated note is no task
    task(teammate, "Bob 的任务", local(9, 11))

    response = login(rep).get("/tasks/")

    assert response.status_code == 200
    assert rows(response) == {
        "overdue": ["逾期回访"],
        "today": ["云帆 ERP", "今天下午", "今晚"],
        "week": ["周五演示", "周日"],
        "later": ["下周一"],
    }
    assert counts(response) == {"overdue": 1, "today": 3, "week": 2, "later": 1}
    page = response.content.decode()
    assert "Bob 的任务" not in page and "已完成" not in page and "待定" not in page
    assert f'href="/deals/{deal.pk}/#deal-activity"' in page  # a deal's date: log the follow-up
    assert 'name="who"' not in page  # a rep has nobody else's tasks to choose


def test_it_lists_a_rule_task_instead_of_the_deal_date_it_stands_for(login, rep):
    deal = make_deal(owner=rep, name="云帆 ERP", next_follow_up=local(8, 9))
    task(rep, "Overdue follow-up: “云帆 ERP”", local(8, 9), deal=deal)
    other = make_deal(owner=rep, name="华东 CRM", next_follow_up=local(8, 10))

    response = login(rep).get("/tasks/")

    assert rows(response)["overdue"] == ["Overdue follow-up: “云帆 ERP”", other.name]


def test_it_leaves_out_closed_deals_follow_ups(login, rep):
    deal = make_deal(owner=rep, name="已赢", next_follow_up=local(9, 16))
    services.deal_move(deal=deal, stage=Deal.objects.get(pk=deal.pk).pipeline.stages.get(key="won"))

    assert "已赢" not in login(rep).get("/tasks/").content.decode()


def test_it_never_shows_a_rep_another_reps_tasks(login, rep, teammate):
    task(teammate, "Bob 的任务", local(9, 11))
    client = login(rep)
    for who in (str(teammate.pk), "team", "team-1", "x"):
        response = client.get("/tasks/", {"who": who})
        assert response.status_code == 400, who
        assert "Bob 的任务" not in response.content.decode()
        assert "Whose tasks" in response.content.decode()  # the message names the filter


def test_it_lets_a_manager_see_a_team_members_tasks_and_not_an_outsiders(
    login, manager, rep, teammate, outsider
):
    task(rep, "Alice 的任务", local(9, 11))
    task(teammate, "Bob 的任务", local(9, 12))
    task(outsider, "外组的任务", local(9, 13))
    client = login(manager)

    own = client.get("/tasks/")
    assert rows(own)["today"] == []  # the manager's own by default
    choices = dict(own.context["who_choices"])
    assert str(rep.pk) in choices and str(teammate.pk) in choices
    assert str(outsider.pk) not in choices

    alice = client.get("/tasks/", {"who": rep.pk})
    assert rows(alice)["today"] == ["Alice 的任务"]
    assert alice.context["show_owner"]

    team = client.get("/tasks/", {"who": "team"})
    assert rows(team)["today"] == ["Alice 的任务", "Bob 的任务"]

    refused = client.get("/tasks/", {"who": outsider.pk})
    assert refused.status_code == 400
    assert "外组的任务" not in refused.content.decode()


def test_it_lets_an_admin_choose_a_team(login, admin_user, rep, outsider):
    task(rep, "Alice 的任务", local(9, 11))
    task(outsider, "外组的任务", local(9, 13))
    response = login(admin_user).get("/tasks/", {"who": f"team-{rep.team_id}"})
    assert rows(response)["today"] == ["Alice 的任务"]
    assert f"team-{outsider.team_id}" in dict(response.context["who_choices"])


def test_it_shows_the_first_of_a_long_group_and_pages_through_all_of_it(login, rep):
    lead = LeadFactory(owner=rep)
    n = PAGE_SIZE + 5
    Activity.objects.bulk_create(
        Activity(
            owner=rep,
            lead=lead,
            kind="task",
            subject=f"T{i:03d}",
            due_at=local(1, 9) + dt.timedelta(minutes=i),
            created_at=local(1, 8),
        )
        for i in range(n)
    )
    client = login(rep)

    overview = client.get("/tasks/")
    assert len(rows(overview)["overdue"]) == GROUP_LIMIT
    assert counts(overview)["overdue"] == n
    assert f"Show all {n}" in overview.content.decode()

    first = client.get("/tasks/", {"group": "overdue"})
    assert rows(first)["overdue"] == [f"T{i:03d}" for i in range(PAGE_SIZE)]
    assert first.context["page"].has_next
    second = client.get("/tasks/", {"group": "overdue", "page": 2})
    assert rows(second)["overdue"] == [f"T{i:03d}" for i in range(PAGE_SIZE, n)]
    assert not second.context["page"].has_next


def test_it_refuses_an_unknown_group_by_name(login, rep):
    response = login(rep).get("/tasks/", {"group": "someday"})
    assert response.status_code == 400
    assert "someday" in response.content.decode()


def test_it_reads_the_list_in_a_bounded_number_of_queries(
    login, rep, django_assert_max_num_queries
):
    deal = make_deal(owner=rep, next_follow_up=local(9, 9))
    for day in (5, 9, 11, 20):
        task(rep, f"T{day}", local(day, 9), deal=deal)
    client = login(rep)
    # session, user, the bell's count; the open stages' ids; two group counts; each of the
    # four groups' activities and deals; nothing per row.
    with django_assert_max_num_queries(14):
        assert client.get("/tasks/").status_code == 200


# --- Marking done ----------------------------------------------------------------------------


def test_it_marks_a_task_done_as_a_follow_up_and_returns_to_the_list(login, rep):
    deal = make_deal(owner=rep, name="云帆 ERP")
    todo = task(rep, "回访", local(9, 9), deal=deal)

    response = login(rep).post(f"/tasks/{todo.pk}/done/", {"next": "/tasks/?group=today"})

    assert response.status_code == 302
    assert response["Location"] == "/tasks/?group=today"
    todo.refresh_from_db()
    assert todo.done_at == NOW
    deal.refresh_from_db()
    assert deal.follow_up_count == 1 and deal.last_follow_up_at == NOW


def test_it_answers_htmx_with_the_done_row(login, rep):
    todo = task(rep, "回访", local(9, 9))
    response = login(rep).post(f"/tasks/{todo.pk}/done/", **HX)
    assert response.status_code == 200
    assert f'id="task-a{todo.pk}"' in response.content.decode()
    assert "is-done" in response.content.decode()


def test_it_ignores_an_offsite_next(login, rep):
    todo = task(rep, "回访", local(9, 9))
    response = login(rep).post(f"/tasks/{todo.pk}/done/", {"next": "https://evil.example/"})
    assert response["Location"] == "/tasks/"


def test_it_refuses_marking_a_task_done_twice_with_a_message(login, rep):
    todo = task(rep, "回访", local(9, 9))
    client = login(rep)
    client.post(f"/tasks/{todo.pk}/done/")
    again = client.post(f"/tasks/{todo.pk}/done/", **HX)
    assert again.status_code == 409
    assert "already done" in again.content.decode()
    page = client.post(f"/tasks/{todo.pk}/done/", follow=True)
    assert "already done" in page.content.decode()


def test_it_lets_only_those_who_may_change_a_task_mark_it_done(
    login, rep, teammate, manager, outsider
):
    todo = task(rep, "回访", local(9, 9))
    for intruder in (teammate, outsider):
        assert login(intruder).post(f"/tasks/{todo.pk}/done/").status_code == 404
        assert Activity.objects.get(pk=todo.pk).done_at is None
    assert Client().post(f"/tasks/{todo.pk}/done/").status_code == 302  # to the login page
    assert Activity.objects.get(pk=todo.pk).done_at is None
    assert login(manager).post(f"/tasks/{todo.pk}/done/").status_code == 302
    assert Activity.objects.get(pk=todo.pk).done_at == NOW


def test_it_needs_csrf_and_post_to_mark_done(rep):
    todo = task(rep, "回访", local(9, 9))
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    assert client.post(f"/tasks/{todo.pk}/done/").status_code == 403
    assert client.get(f"/tasks/{todo.pk}/done/").status_code == 405
    assert Activity.objects.get(pk=todo.pk).done_at is None
    # The page's own form carries the token.
    page = client.get("/tasks/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page


# --- The week calendar -----------------------------------------------------------------------


def days_of(response) -> dict[str, list[str]]:
    return {
        day.isoformat(): [t.activity.subject if t.activity else t.deal.name for t in shown + more]
        for day, _count, shown, more in response.context["days"]
    }


def test_it_puts_each_follow_up_on_its_local_day_from_monday_to_sunday(login, rep, teammate):
    deal = make_deal(owner=rep, name="云帆 ERP", next_follow_up=local(10, 15))
    task(rep, "周一早", local(7, 0, 0))
    task(rep, "周三深夜", local(9, 23, 30))  # 15:30 UTC: Wednesday in Shanghai
    done = task(rep, "已完成", local(8, 9), deal=deal)
    services.activity_complete(activity=done)
    task(rep, "周日晚", local(13, 23, 59))
    task(rep, "下周一", local(14, 0, 0))
    task(rep, "上周日", local(6, 23, 59))
    task(teammate, "Bob 的任务", local(9, 11))

    response = login(rep).get("/tasks/calendar/")

    assert response.status_code == 200
    assert days_of(response) == {
        "2026-12-07": ["周一早"],
        "2026-12-08": ["已完成"],  # what happened stays on the calendar
        "2026-12-09": ["周三深夜"],
        "2026-12-10": ["云帆 ERP"],
        "2026-12-11": [],
        "2026-12-12": [],
        "2026-12-13": ["周日晚"],
    }
    context = response.context
    assert (context["week"], context["previous_week"], context["next_week"]) == (
        "2026-W50",
        "2026-W49",
        "2026-W51",
    )
    page = response.content.decode()
    assert f'href="/deals/{deal.pk}/"' in page
    assert "Bob 的任务" not in page
    assert 'value="2026-W50"' in page  # the week picker


def test_it_shows_the_week_asked_for(login, rep):
    task(rep, "下周一", local(14, 0, 0))
    task(rep, "新年", dt.datetime(2027, 1, 1, 9, tzinfo=SHANGHAI))
    client = login(rep)
    assert days_of(client.get("/tasks/calendar/", {"week": "2026-W51"}))["2026-12-14"] == ["下周一"]
    # ISO week 53 of 2026 runs Monday 12-28 to Sunday 2027-01-03.
    response = client.get("/tasks/calendar/", {"week": "2026-W53"})
    assert days_of(response)["2027-01-01"] == ["新年"]
    assert response.context["next_week"] == "2027-W01"


@pytest.mark.parametrize("week", ["2025-W53", "2026-53", "next", "2026-W00"])
def test_it_refuses_a_week_that_does_not_exist_naming_it(login, rep, week):
    response = login(rep).get("/tasks/calendar/", {"week": week})
    assert response.status_code == 400
    assert f"“{week}” is not a week" in response.content.decode()


def test_it_shows_a_manager_the_teams_week_with_owners(login, manager, rep, teammate, outsider):
    task(rep, "Alice 的任务", local(9, 11))
    task(teammate, "Bob 的任务", local(10, 11))
    task(outsider, "外组的任务", local(9, 13))
    response = login(manager).get("/tasks/calendar/", {"who": "team"})
    week = days_of(response)
    assert week["2026-12-09"] == ["Alice 的任务"] and week["2026-12-10"] == ["Bob 的任务"]
    page = response.content.decode()
    assert "外组的任务" not in page
    assert str(rep) in page  # whose it is
    refused = login(rep).get("/tasks/calendar/", {"who": teammate.pk})
    assert refused.status_code == 400
    assert "Bob 的任务" not in refused.content.decode()


def test_it_folds_a_busy_day_behind_more(login, rep):
    for minute in range(12):
        task(rep, f"M{minute:02d}", local(9, 9, minute))
    response = login(rep).get("/tasks/calendar/")
    wednesday = next(d for d in response.context["days"] if d[0] == dt.date(2026, 12, 9))
    _day, count, shown, more = wednesday
    assert (count, len(shown), len(more)) == (12, 8, 4)
    assert "4 more" in response.content.decode()
