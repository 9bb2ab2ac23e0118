"""The bell, the list and the marks: a user reaches only their own notifications."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leakmap.automation.context_processors import notifications as bell_context
from leakmap.automation.models import Notification
from leakmap.automation.services import notification_create
from tests.factories import T0, days


@pytest.fixture
def inbox(rep, teammate):
    mine = [
        notification_create(
            recipient=rep, kind="stage_sla", title=f"Mine {i}", url="/deals/7/", at=T0 + days(i)
        )
        for i in range(3)
    ]
    theirs = notification_create(recipient=teammate, kind="stage_sla", title="Bob's", at=T0)
    return mine, theirs


def test_it_lists_only_the_users_own_notifications_newest_first(client, web_settings, rep, inbox):
    client.force_login(rep)
    response = client.get("/notifications/")
    assert response.status_code == 200
    titles = [n.title for n in response.context["page"].object_list]
    assert titles == ["Mine 2", "Mine 1", "Mine 0"]
    assert "Bob's" not in response.content.decode()
    # The bell in the nav shows the unread count.
    assert response.context["unread_notifications_count"] == 3
    assert '<span class="notification-count">3</span>' in response.content.decode()


def test_it_marks_one_as_read_and_returns_to_the_list(client, web_settings, rep, inbox):
    mine, _ = inbox
    client.force_login(rep)
    response = client.post(f"/notifications/{mine[0].pk}/read/")
    assert response.status_code == 302
    assert response["Location"] == "/notifications/"
    assert Notification.objects.get(pk=mine[0].pk).read_at is not None
    assert Notification.objects.filter(recipient=rep, read_at__isnull=True).count() == 2
    response = client.get("/notifications/?unread=1")
    assert [n.title for n in response.context["page"].object_list] == ["Mine 2", "Mine 1"]


def test_it_opens_a_notification_by_marking_it_read_and_going_to_its_page(client, rep, inbox):
    mine, _ = inbox
    client.force_login(rep)
    response = client.post(f"/notifications/{mine[1].pk}/read/", {"next": mine[1].url})
    assert response["Location"] == "/deals/7/"
    # An off-site `next` is ignored.
    response = client.post(f"/notifications/{mine[2].pk}/read/", {"next": "https://evil.example/"})
    assert response["Location"] == "/notifications/"


def test_it_answers_404_for_someone_elses_notification(client, rep, teammate, inbox):
    _, theirs = inbox
    client.force_login(rep)
    assert client.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_it_marks_all_of_mine_and_none_of_theirs(client, rep, teammate, inbox):
    _, theirs = inbox
    client.force_login(rep)
    assert client.post("/notifications/read-all/").status_code == 302
    assert Notification.objects.filter(recipient=rep, read_at__isnull=True).count() == 0
    assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_it_requires_post_with_csrf_and_a_login(rep, inbox):
    mine, _ = inbox
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(rep)
    assert csrf_client.post(f"/notifications/{mine[0].pk}/read/").status_code == 403
    assert csrf_client.get(f"/notifications/{mine[0].pk}/read/").status_code == 405
    assert Notification.objects.get(pk=mine[0].pk).read_at is None

    anonymous = Client()
    response = anonymous.get("/notifications/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_counts_unread_with_one_query_and_nothing_for_anonymous_users(rep, inbox):
    request = RequestFactory().get("/")
    request.user = rep
    with CaptureQueriesContext(connection) as ctx:
        assert bell_context(request) == {"unread_notifications_count": 3}
    assert len(ctx.captured_queries) == 1  # SELECT COUNT(*) … WHERE recipient AND read_at IS NULL

    request.user = AnonymousUser()
    with CaptureQueriesContext(connection) as ctx:
        assert bell_context(request) == {}
    assert len(ctx.captured_queries) == 0


def test_it_renders_no_bell_for_anonymous_users(web_settings):
    from django.template.loader import render_to_string

    assert render_to_string("automation/_bell.html", {"user": AnonymousUser()}).strip() == ""


def test_it_writes_a_notification_in_the_recipients_language(clock, only_rule, rep, settings):
    from leakmap.automation.rules import run_rules
    from tests.factories import make_deal

    settings.LANGUAGE_CODE = "zh-hans"
    only_rule("stage_sla")
    rep.language = "zh-hans"
    rep.save()
    make_deal(owner=rep, name="大单")
    run_rules(as_of=T0 + days(7) + dt.timedelta(seconds=1))
    titles = list(Notification.objects.order_by("id").values_list("recipient__username", "title"))
    assert titles[0] == ("alice", "“大单”在初步接洽阶段已停留 7 天")


# --- Grouped: a hundred unread stay readable --------------------------------------------------


@pytest.fixture
def flood(rep, teammate):
    """107 unread over three days and three kinds (one unnamed), as a rep found them."""
    now = timezone.now()
    plan = [("no_follow_up", "Silent", 60), ("stage_sla", "Slow", 40), ("from_a_script", "X", 7)]
    made = []
    for kind, title, n in plan:
        for i in range(n):
            made.append(
                notification_create(
                    recipient=rep, kind=kind, title=f"{title} {i}", at=now - days(i % 3)
                )
            )
    notification_create(recipient=teammate, kind="no_follow_up", title="Bob's", at=now)
    return made


def test_it_groups_a_page_by_day_and_kind_with_unread_counts(client, web_settings, rep, flood):
    client.force_login(rep)
    response = client.get("/notifications/")
    assert response.status_code == 200
    context = response.context
    assert context["unread_total"] == 107
    kinds = {k["kind"]: (str(k["label"]), k["unread"]) for k in context["kinds"]}
    assert kinds == {
        "no_follow_up": ("Deal without follow-up", 60),
        "stage_sla": ("Deal over its stage's SLA", 40),
        "from_a_script": ("Other", 7),  # no key reaches the page
    }
    page = response.content.decode()
    assert "from_a_script" not in page.replace('kind=from_a_script"', "")
    # The first page holds the 50 newest; they are grouped by local day, newest day first.
    # Today's 37 (every third of each kind), then the newest 13 of yesterday.
    days_shown = context["days"]
    assert [str(d["label"]) for d in days_shown] == ["Today", "Yesterday"]
    today = [(str(g["label"]), len(g["items"]), g["folded"]) for g in days_shown[0]["kinds"]]
    assert sorted(today) == [
        ("Deal over its stage's SLA", 14, True),
        ("Deal without follow-up", 20, True),
        ("Other", 3, False),
    ]
    assert sum(len(g["items"]) for g in days_shown[1]["kinds"]) == 13
    assert page.count("<details") == 3  # today's two large kinds and yesterday's
    second = client.get("/notifications/", {"page": 2}).context["days"]
    two_days_ago = timezone.localdate() - dt.timedelta(days=2)
    assert [d["day"] for d in second] == [two_days_ago + dt.timedelta(days=1), two_days_ago]


def test_it_filters_by_kind_and_marks_only_that_kind_of_mine_read(
    client, web_settings, rep, teammate, flood
):
    client.force_login(rep)
    response = client.get("/notifications/", {"kind": "stage_sla"})
    shown = [n.title for d in response.context["days"] for g in d["kinds"] for n in g["items"]]
    assert len(shown) == 40 and all(t.startswith("Slow ") for t in shown)
    page = response.content.decode()
    assert 'name="kind" value="stage_sla"' in page  # "mark all read" is scoped to the kind

    back = "/notifications/?kind=stage_sla"
    response = client.post("/notifications/read-all/", {"kind": "stage_sla", "next": back})
    assert response["Location"] == back
    unread = Notification.objects.filter(read_at__isnull=True)
    assert unread.filter(recipient=rep, kind="stage_sla").count() == 0
    assert unread.filter(recipient=rep).count() == 67
    assert unread.filter(recipient=teammate).count() == 1


def test_it_refuses_an_unknown_kind_by_name(client, web_settings, rep, flood):
    client.force_login(rep)
    response = client.get("/notifications/", {"kind": "nonsense"})
    assert response.status_code == 400
    assert "nonsense" in response.content.decode()


def test_it_marks_all_read_only_with_csrf(rep, flood):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    assert client.post("/notifications/read-all/").status_code == 403
    assert Notification.objects.filter(recipient=rep, read_at__isnull=True).count() == 107
