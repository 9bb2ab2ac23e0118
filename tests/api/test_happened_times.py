"""The API takes the times of things that happened within the bounds an import does
(CONTRACT §2): from 2000-01-01 to now. Past them is a 422 naming the field, never a database
error; plans (due_at, next_follow_up) may lie ahead."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from leakmap.crm.models import Account, Activity, Contact, Deal, Lead
from tests.api.conftest import fields_of
from tests.factories import LeadFactory, make_deal

pytestmark = pytest.mark.django_db


def _tomorrow() -> str:
    return (timezone.now() + dt.timedelta(days=1)).isoformat()


# (the value, what the message names in either language: today's date, or the earliest day)
BAD = [
    (_tomorrow, lambda: timezone.localdate().isoformat()),
    (lambda: "1999-12-31T15:59:59Z", lambda: "2000-01-01"),
    (lambda: "0001-01-02T00:00:00Z", lambda: "2000-01-01"),
]


def _body(path: str, deal_id: int) -> dict:
    return {
        "/leads": {"name": "x"},
        "/deals": {"name": "x"},
        "/accounts": {"name": "x"},
        "/contacts": {"name": "x"},
        "/activities": {"kind": "call", "deal_id": deal_id},
    }[path]


def _counts():
    return [m.objects.count() for m in (Lead, Deal, Account, Contact, Activity)]


@pytest.mark.parametrize("path", ["/leads", "/deals", "/accounts", "/contacts", "/activities"])
@pytest.mark.parametrize(("when", "message"), BAD)
def test_it_answers_a_created_at_out_of_bounds_with_422(as_rep, rep, path, when, message):
    deal = make_deal(owner=rep)
    before = _counts()
    response = as_rep.post(path, {**_body(path, deal.pk), "created_at": when()})
    assert response.status_code == 422
    assert fields_of(response) == {"created_at"}
    assert message() in response.json()["detail"][0]["message"]
    assert _counts() == before


@pytest.mark.parametrize(("when", "message"), BAD)
def test_it_answers_a_done_at_out_of_bounds_with_422(as_rep, rep, when, message):
    deal = make_deal(owner=rep)
    logged = as_rep.post("/activities", {"kind": "call", "deal_id": deal.pk, "done_at": when()})
    assert (logged.status_code, fields_of(logged)) == (422, {"done_at"})
    task = Activity.objects.create(
        kind="task", deal=deal, lead=deal.lead, owner=rep, created_at=timezone.now()
    )
    completed = as_rep.post(f"/activities/{task.pk}/complete", {"done_at": when()})
    assert (completed.status_code, fields_of(completed)) == (422, {"done_at"})
    assert message() in completed.json()["detail"][0]["message"]
    task.refresh_from_db()
    assert task.done_at is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/deals/{deal}/move", {"stage": "proposal"}),
        ("/deals/{deal}/won", {}),
        ("/deals/{deal}/lost", {"lost_reason": "价格过高"}),
        ("/leads/{lead}/convert", {}),
    ],
)
def test_it_answers_a_move_in_the_future_with_422(as_rep, rep, path, body):
    deal = make_deal(owner=rep)
    lead = LeadFactory(owner=rep)
    url = path.format(deal=deal.pk, lead=lead.pk)
    response = as_rep.post(url, {**body, "at": _tomorrow()})
    assert (response.status_code, fields_of(response)) == (422, {"at"})


def test_it_takes_times_up_to_now_and_plans_ahead(as_rep, rep):
    deal = make_deal(owner=rep)
    now = timezone.now().isoformat()
    lead = as_rep.post("/leads", {"name": "x", "created_at": "2000-01-01T00:00:00+08:00"})
    assert lead.status_code == 201
    task = as_rep.post(
        "/activities",
        {"kind": "task", "deal_id": deal.pk, "created_at": now, "due_at": _tomorrow()},
    )
    assert task.status_code == 201
    done = as_rep.post(f"/activities/{task.json()['id']}/complete", {"done_at": now})
    assert done.status_code == 200
