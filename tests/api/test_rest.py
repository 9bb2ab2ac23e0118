from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client

from leakmap.crm.models import Account, Activity, Contact, Deal, Lead, LeadStatus, StageChange
from tests.api.conftest import api_as, fields_of
from tests.factories import (
    T0,
    LeadFactory,
    SourceFactory,
    days,
    lost_reason,
    make_deal,
    stage,
)

# --- Visibility -----------------------------------------------------------------------------


def test_it_lists_only_the_leads_the_caller_may_see(rep, teammate, outsider, manager, admin_user):
    mine = LeadFactory(owner=rep, name="mine")
    LeadFactory(owner=teammate, name="teammate's")
    LeadFactory(owner=outsider, name="outsider's")

    names = lambda user: sorted(i["name"] for i in api_as(user).get("/leads").json()["items"])  # noqa: E731

    assert names(rep) == ["mine"]
    assert names(manager) == ["mine", "teammate's"]
    assert names(admin_user) == ["mine", "outsider's", "teammate's"]
    assert api_as(rep).get(f"/leads/{mine.pk}").json()["owner"] == "alice"


def test_it_answers_404_for_another_reps_records(as_rep, outsider, teammate):
    deal = make_deal(owner=outsider)
    lead = LeadFactory(owner=teammate)
    activity_count = Activity.objects.count()

    assert as_rep.get(f"/deals/{deal.pk}").status_code == 404
    assert as_rep.patch(f"/deals/{deal.pk}", {"name": "mine now"}).status_code == 404
    assert as_rep.post(f"/deals/{deal.pk}/move", {"stage": "proposal"}).status_code == 404
    assert as_rep.post(f"/deals/{deal.pk}/won", {}).status_code == 404
    assert as_rep.delete(f"/deals/{deal.pk}").status_code == 404
    assert as_rep.get(f"/leads/{lead.pk}").status_code == 404
    assert as_rep.post(f"/leads/{lead.pk}/convert", {}).status_code == 404
    # Referring to it from a new record is refused the same way, naming the field.
    response = as_rep.post("/activities", {"kind": "call", "deal_id": deal.pk})
    assert response.status_code == 422
    assert fields_of(response) == {"deal_id"}

    deal.refresh_from_db()
    assert (deal.name, deal.stage.key) == ("Deal", "qualification")
    assert Deal.objects.filter(pk=deal.pk).exists()
    assert Activity.objects.count() == activity_count
    # zh-hans is the install's language; a client may ask for English.
    assert as_rep.get(f"/deals/{deal.pk}").json() == {
        "detail": [{"field": None, "message": "未找到。"}]
    }
    english = as_rep.client.get(
        f"/api/v1/deals/{deal.pk}", headers={**as_rep.headers, "Accept-Language": "en"}
    )
    assert english.json() == {"detail": [{"field": None, "message": "Not found."}]}


def test_it_lets_a_manager_work_on_the_teams_deals(as_manager, rep):
    deal = make_deal(owner=rep)
    response = as_manager.post(f"/deals/{deal.pk}/move", {"stage": "proposal"})
    assert response.status_code == 200
    assert response.json()["stage"] == "proposal"


def test_it_refuses_to_hand_a_record_to_someone_the_caller_cannot_see(as_rep, outsider, rep):
    response = as_rep.post("/leads", {"name": "x", "owner": outsider.username})
    assert response.status_code == 422
    assert fields_of(response) == {"owner"}
    assert Lead.objects.count() == 0


# --- Authentication -------------------------------------------------------------------------


def test_it_requires_a_valid_token(rep):
    assert Client().get("/api/v1/leads").status_code == 401
    bad = Client().get("/api/v1/leads", headers={"Authorization": "Bearer lmk_00000000_nope"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == "Bearer"


def test_it_accepts_the_web_apps_session_with_csrf(rep):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    assert client.get("/api/v1/leads").status_code == 200

    refused = client.post("/api/v1/leads", data={"name": "x"}, content_type="application/json")
    assert refused.status_code == 403
    assert Lead.objects.count() == 0

    client.get("/api/v1/docs")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    created = client.post(
        "/api/v1/leads",
        data={"name": "x"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201
    assert Lead.objects.get().owner == rep


# --- Leads ----------------------------------------------------------------------------------


def test_it_creates_a_lead_owned_by_the_caller(as_rep, rep):
    response = as_rep.post(
        "/leads",
        {
            "name": "张三",
            "company": "华东制造",
            "email": "zhang@example.com",
            "source": "展会",
            "budget": "120000.50",
            "created_at": "2026-01-05T09:00:00+08:00",
            "utm_source": "baidu",
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner"] == "alice"
    assert body["source"] == "展会"
    assert body["budget"] == 120000.5
    assert body["status"] == "new"
    lead = Lead.objects.get(pk=body["id"])
    assert lead.owner == rep
    assert lead.budget == Decimal("120000.50")
    assert lead.created_at == dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
    assert lead.utm_source == "baidu"


def test_it_updates_status_and_fields_of_a_lead(as_rep, rep):
    lead = LeadFactory(owner=rep)
    response = as_rep.patch(f"/leads/{lead.pk}", {"title": "CTO", "status": "qualified"})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["status"]) == ("CTO", "qualified")
    refused = as_rep.patch(f"/leads/{lead.pk}", {"status": "converted"})
    assert refused.status_code == 422
    assert fields_of(refused) == {"status"}


def test_it_converts_a_lead_into_account_contact_and_deal(as_rep, rep):
    lead = LeadFactory(owner=rep, company="华东制造", budget=Decimal("50000"))
    response = as_rep.post(
        f"/leads/{lead.pk}/convert", {"amount": "80000", "at": "2026-01-07T10:00:00Z"}
    )
    assert response.status_code == 201
    deal = Deal.objects.get(pk=response.json()["id"])
    assert response.json()["stage"] == "qualification"
    assert deal.amount == Decimal("80000")
    assert deal.account.name == "华东制造"
    assert deal.contact.name == lead.name
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert lead.converted_at == T0 + dt.timedelta(days=2, hours=1)

    again = as_rep.post(f"/leads/{lead.pk}/convert", {})
    assert again.status_code == 422
    assert fields_of(again) == {"status"}
    assert Deal.objects.count() == 1


def test_it_disqualifies_a_lead_with_a_reason(as_rep, rep):
    lead = LeadFactory(owner=rep)
    response = as_rep.post(f"/leads/{lead.pk}/disqualify", {"reason": "学生"})
    assert response.json()["status"] == "disqualified"
    assert fields_of(as_rep.post(f"/leads/{lead.pk}/disqualify", {})) == {"reason"}


def test_it_deletes_a_lead(as_rep, rep):
    lead = LeadFactory(owner=rep)
    assert as_rep.delete(f"/leads/{lead.pk}").status_code == 204
    assert not Lead.objects.filter(pk=lead.pk).exists()


# --- Pagination, filtering, ordering --------------------------------------------------------


def test_it_pages_with_an_opaque_cursor_in_created_at_order(as_rep, rep):
    leads = [LeadFactory(owner=rep, name=f"L{i}", created_at=T0 + days(i)) for i in range(5)]
    # Two leads created at the same moment are ordered by id, so none is skipped or repeated.
    twin = LeadFactory(owner=rep, name="L2b", created_at=T0 + days(2))

    first = as_rep.get("/leads", limit=2).json()
    assert [i["name"] for i in first["items"]] == ["L0", "L1"]
    assert "L1" not in first["next_cursor"]  # opaque
    second = as_rep.get("/leads", limit=2, cursor=first["next_cursor"]).json()
    assert [i["name"] for i in second["items"]] == ["L2", "L2b"]
    # A lead created meanwhile earlier in the order does not shift the next page.
    LeadFactory(owner=rep, name="late", created_at=T0 - days(1))
    third = as_rep.get("/leads", limit=2, cursor=second["next_cursor"]).json()
    assert [i["name"] for i in third["items"]] == ["L3", "L4"]
    assert third["next_cursor"] is None
    assert twin.pk > leads[-1].pk

    newest = as_rep.get("/leads", limit=3, ordering="-created_at").json()
    assert [i["name"] for i in newest["items"]] == ["L4", "L3", "L2b"]
    rest = as_rep.get("/leads", limit=3, ordering="-created_at", cursor=newest["next_cursor"])
    assert [i["name"] for i in rest.json()["items"]] == ["L2", "L1", "L0"]


def test_it_rejects_a_forged_or_foreign_cursor(as_rep, rep):
    for i in range(3):
        LeadFactory(owner=rep, created_at=T0 + days(i))
    cursor = as_rep.get("/leads", limit=1).json()["next_cursor"]
    forged = as_rep.get("/leads", cursor=cursor[:-3] + "xyz")
    assert forged.status_code == 422
    assert fields_of(forged) == {"cursor"}
    foreign = as_rep.get("/leads", cursor=cursor, ordering="name")
    assert fields_of(foreign) == {"cursor"}


def test_it_finds_leads_by_e_mail_ignoring_case_and_by_phone(as_rep, rep, teammate):
    LeadFactory(owner=rep, name="张三", email="Zhang@Example.com", phone="13800000000")
    LeadFactory(owner=rep, name="李四", email="li@example.com", phone="13900000000")
    LeadFactory(owner=teammate, name="王五", email="zhang@example.com")  # not the rep's

    def names(**params):
        return [i["name"] for i in as_rep.get("/leads", **params).json()["items"]]

    assert names(email="ZHANG@example.com") == ["张三"]
    assert names(phone="13900000000") == ["李四"]


def test_it_filters_and_orders_deals(as_rep, rep):
    web = SourceFactory(name="官网")
    small = make_deal(owner=rep, amount=100, name="small", source=web)
    big = make_deal(owner=rep, amount=9000, name="big", created_at=T0 + days(1))
    make_deal(owner=rep, amount=500, name="won", created_at=T0 + days(2))
    as_rep.post(f"/deals/{Deal.objects.get(name='won').pk}/won", {"at": "2026-02-01T00:00:00Z"})

    def names(**params):
        return [i["name"] for i in as_rep.get("/deals", **params).json()["items"]]

    assert names(ordering="-amount") == ["big", "won", "small"]
    assert names(status="open", ordering="amount") == ["small", "big"]
    assert names(status="won") == ["won"]
    assert names(source="官网") == ["small"]
    assert names(stage="qualification") == ["small", "big"]
    assert names(q="BI") == ["big"]
    assert names(created_from="2026-01-06T00:00:00Z", created_to="2026-01-06T23:59:59Z") == ["big"]
    assert small.pk != big.pk


# --- Deals ----------------------------------------------------------------------------------


def test_it_creates_a_deal_in_a_chosen_open_stage(as_rep, rep):
    response = as_rep.post(
        "/deals",
        {
            "name": "ERP",
            "amount": "1000.00",
            "stage": "proposal",
            "source": "官网",
            "expected_close_date": "2026-03-31",
        },
    )
    assert response.status_code == 201
    deal = Deal.objects.get(pk=response.json()["id"])
    assert (deal.stage.key, deal.owner, deal.amount) == ("proposal", rep, Decimal("1000.00"))
    assert deal.stage_changes.count() == 1
    incomplete = as_rep.post("/deals", {"name": "x", "stage": "proposal"})
    assert incomplete.status_code == 422
    assert fields_of(incomplete) == {"amount", "expected_close_date"}
    refused = as_rep.post("/deals", {"name": "x", "stage": "won"})
    assert refused.status_code == 422
    assert fields_of(refused) == {"stage"}


def test_it_moves_a_deal_and_records_the_change(as_rep, rep):
    deal = make_deal(owner=rep)
    response = as_rep.post(
        f"/deals/{deal.pk}/move", {"stage": "proposal", "at": "2026-01-08T09:00:00Z"}
    )
    assert response.status_code == 200
    assert response.json()["stage"] == "proposal"
    change = StageChange.objects.filter(deal=deal).latest("at")
    assert (change.from_stage.key, change.to_stage.key, change.by) == (
        "qualification",
        "proposal",
        rep,
    )
    assert change.at == T0 + days(3)

    unknown = as_rep.post(f"/deals/{deal.pk}/move", {"stage": "nirvana"})
    assert unknown.status_code == 422
    assert fields_of(unknown) == {"stage"}
    lost_without_reason = as_rep.post(f"/deals/{deal.pk}/move", {"stage": "lost"})
    assert fields_of(lost_without_reason) == {"lost_reason"}
    deal.refresh_from_db()
    assert deal.stage.key == "proposal"


def test_it_closes_a_deal_won(as_rep, rep):
    deal = make_deal(owner=rep)
    response = as_rep.post(f"/deals/{deal.pk}/won", {"at": "2026-01-20T00:00:00Z"})
    assert response.status_code == 200
    assert response.json()["stage_kind"] == "won"
    assert response.json()["closed_at"] == "2026-01-20T00:00:00Z"


def test_it_closes_a_deal_lost_with_reason_and_competitor(as_rep, rep):
    deal = make_deal(owner=rep)
    reason = lost_reason()
    unknown = as_rep.post(f"/deals/{deal.pk}/lost", {"lost_reason": "月亮不圆"})
    assert unknown.status_code == 422
    assert fields_of(unknown) == {"lost_reason"}
    missing = as_rep.post(f"/deals/{deal.pk}/lost", {})
    assert fields_of(missing) == {"lost_reason"}

    response = as_rep.post(
        f"/deals/{deal.pk}/lost", {"lost_reason": reason.name, "at": "2026-01-20T00:00:00Z"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["stage"], body["lost_reason"]) == ("lost", reason.name)
    deal.refresh_from_db()
    assert deal.lost_at_stage == stage("qualification")
    assert deal.closed_at == dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def test_it_asks_for_the_competitor_when_the_reason_needs_one(as_rep, rep):
    deal = make_deal(owner=rep)
    reason = lost_reason()
    reason.requires_competitor = True
    reason.save()
    response = as_rep.post(f"/deals/{deal.pk}/lost", {"lost_reason": reason.name})
    assert response.status_code == 422
    assert fields_of(response) == {"competitor"}
    ok = as_rep.post(f"/deals/{deal.pk}/lost", {"lost_reason": reason.name, "competitor": "友商"})
    assert ok.json()["competitor"] == "友商"


def test_it_updates_and_deletes_a_deal(as_rep, rep):
    deal = make_deal(owner=rep)
    response = as_rep.patch(f"/deals/{deal.pk}", {"amount": "2500.00", "industry": "制造"})
    assert (response.json()["amount"], response.json()["industry"]) == (2500.0, "制造")
    system = as_rep.patch(f"/deals/{deal.pk}", {"amount": "-1"})
    assert fields_of(system) == {"amount"}
    assert as_rep.delete(f"/deals/{deal.pk}").status_code == 204
    assert not Deal.objects.filter(pk=deal.pk).exists()


# --- Accounts, contacts, activities ---------------------------------------------------------


def test_it_creates_accounts_and_contacts(as_rep, rep, as_outsider):
    account = as_rep.post("/accounts", {"name": "华东制造", "industry": "制造"}).json()
    assert (account["owner"], account["industry"]) == ("alice", "制造")
    contact = as_rep.post(
        "/contacts", {"name": "李四", "account_id": account["id"], "email": "li@example.com"}
    )
    assert contact.status_code == 201
    assert Contact.objects.get().account_id == account["id"]
    bad_email = as_rep.post("/contacts", {"name": "王五", "email": "not-an-address"})
    assert bad_email.status_code == 422
    assert fields_of(bad_email) == {"email"}

    # Not theirs: invisible, and not usable as a reference.
    assert as_outsider.get(f"/accounts/{account['id']}").status_code == 404
    assert as_outsider.get("/accounts").json()["items"] == []
    refused = as_outsider.post("/contacts", {"name": "x", "account_id": account["id"]})
    assert fields_of(refused) == {"account_id"}

    renamed = as_rep.patch(f"/accounts/{account['id']}", {"name": "华东制造集团"})
    assert renamed.json()["name"] == "华东制造集团"
    assert as_rep.delete(f"/contacts/{contact.json()['id']}").status_code == 204
    assert as_rep.delete(f"/accounts/{account['id']}").status_code == 204
    assert Account.objects.count() == 0


def test_it_logs_and_completes_activities_moving_the_follow_up_facts(as_rep, rep):
    deal = make_deal(owner=rep)
    done = as_rep.post(
        "/activities",
        {"kind": "call", "deal_id": deal.pk, "done_at": "2026-01-06T08:00:00Z", "subject": "首访"},
    )
    assert done.status_code == 201
    task = as_rep.post(
        "/activities", {"kind": "task", "deal_id": deal.pk, "due_at": "2026-01-09T08:00:00Z"}
    ).json()
    deal.refresh_from_db()
    assert deal.follow_up_count == 1

    completed = as_rep.post(
        f"/activities/{task['id']}/complete", {"done_at": "2026-01-09T09:00:00Z"}
    )
    assert completed.json()["done_at"] == "2026-01-09T09:00:00Z"
    deal.refresh_from_db()
    assert deal.follow_up_count == 2
    assert deal.last_follow_up_at == dt.datetime(2026, 1, 9, 9, tzinfo=dt.UTC)

    listed = as_rep.get("/activities", deal_id=deal.pk, done=True).json()["items"]
    assert [a["subject"] for a in listed] == ["首访", ""]
    edited = as_rep.patch(f"/activities/{task['id']}", {"notes": "报价已发"})
    assert edited.json()["notes"] == "报价已发"

    assert as_rep.delete(f"/activities/{task['id']}").status_code == 204
    deal.refresh_from_db()
    assert deal.follow_up_count == 1

    orphan = as_rep.post("/activities", {"kind": "call"})
    assert fields_of(orphan) == {"deal_id"}


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "x", "budget": "abc"}, "budget"),
        ({"name": "x", "budget": "-5"}, "budget"),
        ({"name": "x", "budget": "1.234"}, "budget"),
        ({"name": "x", "budget": "1e20"}, "budget"),
        ({"name": "x", "created_at": "2026-01-05T09:00:00"}, "created_at"),
        ({"name": "x", "created_at": "9999-12-31T23:00:00-05:00"}, "created_at"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "x", "email": "nope"}, "email"),
        ({"name": 5}, "name"),
    ],
)
def test_it_answers_bad_lead_input_with_422_naming_the_field(as_rep, body, field):
    response = as_rep.post("/leads", body)
    assert response.status_code == 422
    assert field in fields_of(response)
    assert Lead.objects.count() == 0


def test_it_answers_malformed_json_and_bad_ids_with_4xx(as_rep):
    malformed = as_rep.client.post(
        "/api/v1/leads", data="{nope", content_type="application/json", headers=as_rep.headers
    )
    assert malformed.status_code == 400
    assert malformed.json()["detail"][0]["message"]
    huge = as_rep.get("/deals/99999999999999999999")
    assert huge.status_code == 422
    assert fields_of(huge) == {"deal_id"}
    assert as_rep.get("/deals/abc").status_code == 422
    assert fields_of(as_rep.get("/deals", limit=1000)) == {"limit"}
    assert fields_of(as_rep.get("/deals", status="maybe")) == {"status"}


def test_it_names_a_reused_external_id_instead_of_failing(as_rep, rep):
    lead = as_rep.post("/leads", {"name": "a", "external_id": "L-1"})
    assert lead.status_code == 201
    again = as_rep.post("/leads", {"name": "b", "external_id": "L-1"})
    assert (again.status_code, fields_of(again)) == (422, {"external_id"})
    deal = as_rep.post("/deals", {"name": "d", "external_id": "D-1"})
    assert deal.status_code == 201
    dup = as_rep.post("/deals", {"name": "d2", "external_id": "D-1"})
    assert (dup.status_code, fields_of(dup)) == (422, {"external_id"})
    act = {"kind": "call", "deal_id": deal.json()["id"], "external_id": "A-1"}
    assert as_rep.post("/activities", act).status_code == 201
    assert fields_of(as_rep.post("/activities", act)) == {"external_id"}
    assert (Lead.objects.count(), Deal.objects.count(), Activity.objects.count()) == (1, 1, 1)


def test_it_answers_a_write_race_with_409_and_writes_nothing(as_rep, rep, monkeypatch):
    from leakmap.api import lookups

    as_rep.post("/deals", {"name": "d", "external_id": "D-1"})
    # As if another client took the id between our check and our insert.
    monkeypatch.setattr(lookups, "unused_external_id", lambda model, value: value)
    raced = as_rep.post("/deals", {"name": "d2", "external_id": "D-1"})
    assert raced.status_code == 409
    assert raced.json()["detail"][0]["field"] is None
    assert Deal.objects.count() == 1
    assert StageChange.objects.count() == 1
