"""The bell, the list and the marks: a user reaches only their own notifications."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

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
