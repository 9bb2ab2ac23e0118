"""Tasks, the week calendar and the notification list in a real Chromium, in zh-hans and en, at
1366 px and 375 px: the groups and days read right, "mark done" and "mark all read" work with
the page's own forms, the days stack on a phone, and no page scrolls sideways."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.utils import timezone

from leakmap.automation.models import Notification
from leakmap.automation.services import notification_create
from leakmap.crm import services
from leakmap.crm.models import Activity
from leakmap.web.views.common import local_day_bounds
from tests.factories import LeadFactory, TeamFactory, UserFactory, make_deal
from tests.web.browser import install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
WIDTHS = (1366, 375)
TEXT = {
    "zh-hans": {"nav": "任务", "overdue": "已逾期", "done": "标为完成", "other": "Overdue"},
    "en": {"nav": "Tasks", "overdue": "Overdue", "done": "Mark done", "other": "已逾期"},
}


@pytest.fixture
def office(transactional_db):
    install_default_pipeline()

    def _office(language: str):
        team = TeamFactory(name="华东一组")
        manager = UserFactory(
            username="manager", role="manager", team=team, display_name="王经理", language=language
        )
        rep = UserFactory(
            username="alice",
            role="rep",
            team=team,
            manager=manager,
            display_name="李娜",
            language=language,
        )
        teammate = UserFactory(
            username="bob", role="rep", team=team, manager=manager, display_name="赵强"
        )
        now = timezone.now()
        end_of_today = local_day_bounds()[1]
        deal = make_deal(
            owner=rep,
            name="云帆 ERP 二期",
            amount=120000,
            next_follow_up=end_of_today - dt.timedelta(minutes=30),
        )
        lead = LeadFactory(owner=rep, name="张伟")
        for subject, due, record in (
            (
                "发送报价单给采购部的王总，并确认下周演示的时间与参会人员",
                now - dt.timedelta(days=3),
                deal,
            ),
            ("电话回访", end_of_today - dt.timedelta(minutes=1), lead),
            ("季度复盘", now + dt.timedelta(days=30), lead),
        ):
            services.activity_log(
                services.ActivityInput(
                    owner=rep,
                    kind="task",
                    subject=subject,
                    due_at=due,
                    deal=record if record is deal else None,
                    lead=record if record is lead else None,
                )
            )
        services.activity_log(
            services.ActivityInput(
                owner=teammate, kind="task", subject="赵强的任务", due_at=now, lead=lead
            )
        )
        for i in range(107):
            notification_create(
                recipient=rep,
                kind=("no_follow_up", "stage_sla", "overdue_follow_up")[i % 3],
                title=f"“云帆 ERP 二期”已 {i} 天没有跟进",
                body="请尽快联系客户。",
                url=f"/deals/{deal.pk}/",
                at=now - dt.timedelta(hours=i * 2),
            )
        return {"rep": rep, "manager": manager, "deal": deal}

    return _office


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_lists_a_reps_tasks_and_marks_one_done(live_server, browser, office, language, width):
    people = office(language)
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": width, "height": 900})
    sign_in(page, base, "alice")
    nav_link = page.locator(".mainnav a[href='/tasks/']")
    assert nav_link.inner_text() == TEXT[language]["nav"]

    page.goto(f"{base}/tasks/")
    assert page.evaluate("document.documentElement.lang") == language
    overdue = page.locator("#group-overdue")
    assert TEXT[language]["overdue"] in overdue.locator("h2").inner_text()
    body = page.locator("main").inner_text()
    assert TEXT[language]["other"] not in body
    assert "赵强的任务" not in body  # a teammate's task is not a rep's to see
    assert page.locator("#group-today .task").count() == 2  # the deal's date and the call
    assert no_sideways_scroll(page), "the task list scrolls sideways"
    shot(page, f"tasks-{language}-{width}")

    todo = Activity.objects.get(subject="电话回访")
    row = page.locator(f"#task-a{todo.pk}")
    with page.expect_response(lambda r: f"/tasks/{todo.pk}/done/" in r.url):
        row.locator("button", has_text=TEXT[language]["done"]).click()
    page.locator(f"#task-a{todo.pk}.is-done").wait_for()
    todo.refresh_from_db()
    assert todo.done_at is not None
    assert no_sideways_scroll(page)

    # A deal's planned date leads to the deal's follow-up form.
    page.locator(f"a[href='/deals/{people['deal'].pk}/#deal-activity']").click()
    page.wait_for_url(f"{base}/deals/{people['deal'].pk}/#deal-activity")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_shows_the_week_side_by_side_or_stacked_on_a_phone(
    live_server, browser, office, language, width
):
    people = office(language)
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": width, "height": 900})
    sign_in(page, base, "alice")
    page.goto(f"{base}/tasks/calendar/")
    days = page.locator(".week-day")
    assert days.count() == 7
    boxes = [days.nth(i).bounding_box() for i in range(7)]
    if width == 1366:
        assert len({round(b["y"]) for b in boxes}) == 1, "the days are not side by side"
        assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    else:
        assert len({round(b["x"]) for b in boxes}) == 1, "the days do not stack"
        assert all(boxes[i]["y"] < boxes[i + 1]["y"] for i in range(6))
    today = page.locator(".week-day.is-today")
    assert today.locator(f"a[href='/deals/{people['deal'].pk}/']").count() >= 1
    first_day = days.nth(0).locator(".week-day-head").inner_text()
    assert (
        ("周一" in first_day or "星期一" in first_day)
        if language == "zh-hans"
        else "Mon" in first_day
    )
    assert no_sideways_scroll(page), "the calendar scrolls sideways"
    shot(page, f"calendar-{language}-{width}")

    this_week = page.locator("input[name=week]").input_value()
    page.locator("a[rel=next]").click()
    page.wait_for_url("**/tasks/calendar/?week=*")
    assert page.locator("input[name=week]").input_value() > this_week
    assert no_sideways_scroll(page)
    page.locator("a[rel=prev]").click()
    page.wait_for_url("**/tasks/calendar/?week=*")
    assert page.locator("input[name=week]").input_value() == this_week

    page.locator(".week-day.is-today a", has_text="云帆 ERP 二期").first.click()
    page.wait_for_url(f"{base}/deals/{people['deal'].pk}/")
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_groups_107_unread_and_marks_them_read(live_server, browser, office, language, width):
    people = office(language)
    rep = people["rep"]
    base = live_server.url
    page = browser.new_page(locale=LOCALES[language], viewport={"width": width, "height": 900})
    sign_in(page, base, "alice")
    assert page.locator(".notification-count").inner_text() == "107"
    page.locator(".notification-bell").click()
    page.wait_for_url(f"{base}/notifications/")
    assert page.locator(".notice-day").count() >= 2  # today, yesterday, …
    kinds = page.locator(".notice-kinds a")
    assert kinds.count() == 4  # all, and each of the three kinds
    body = page.locator("main").inner_text()
    for key in ("no_follow_up", "stage_sla", "overdue_follow_up"):
        assert key not in body
    assert no_sideways_scroll(page), "the notification list scrolls sideways"
    shot(page, f"notifications-{language}-{width}")

    # One kind, then "mark all read" for that kind only.
    label = "阶段时限" if language == "zh-hans" else "SLA"
    page.locator(".notice-kinds a", has_text=label).first.click()
    page.wait_for_url("**/notifications/?kind=stage_sla")
    page.locator("form.read-all button").click()
    page.wait_for_url("**/notifications/?kind=stage_sla")
    unread = Notification.objects.filter(recipient=rep, read_at__isnull=True)
    assert unread.filter(kind="stage_sla").count() == 0
    assert unread.count() == 107 - 36
    assert page.locator(".notification-count").inner_text() == str(107 - 36)

    # One by one: "mark as read" on the first unread of another kind.
    page.goto(f"{base}/notifications/?unread=1")
    first = page.locator(".notice.is-unread").first
    first_id = first.get_attribute("id")
    first.locator("form").last.locator("button").click()
    page.wait_for_url(f"{base}/notifications/?unread=1")
    assert page.locator(f"#{first_id}").count() == 0
    assert unread.count() == 107 - 37

    # Everything else at once.
    page.locator("form.read-all button").click()
    page.wait_for_url(f"{base}/notifications/?unread=1")
    assert unread.count() == 0
    assert page.locator(".notification-count").count() == 0
    assert no_sideways_scroll(page)
    page.close()
