"""The app's shell through Django's test client: error pages, the required-field mark, Today's
over-SLA list, the header search (who sees what) and the new-deal form (who may own it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leakmap.crm.models import Account, Contact, Deal, StageChange
from leakmap.web.views.errors import server_error
from tests.factories import LeadFactory, make_deal, stage

# --- Error pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "heading"), [("zh-hans", "页面不存在"), ("en", "This page does not exist")]
)
def test_a_missing_page_is_styled_translated_and_leads_back(login, rep, language, heading):
    client = login(rep)
    client.post(reverse("set_language"), {"language": language, "next": "/"})
    response = client.get("/leads/999999/", HTTP_REFERER="http://testserver/leads/")
    page = response.content.decode()
    assert response.status_code == 404
    assert heading in page
    assert 'class="topbar"' in page  # the app's header, signed in
    assert 'href="http://testserver/leads/" data-back' in page
    assert f'href="{reverse("home")}" data-home' in page
    assert "web/favicon" in page and "web/app.css" in page


def test_the_back_link_never_points_off_site(login, rep):
    page = login(rep).get("/nowhere/", HTTP_REFERER="https://evil.example/x").content.decode()
    assert "evil.example" not in page and "data-back" not in page


def test_a_forbidden_page_says_so_in_the_users_language(login, rep):
    client = login(rep)
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    response = client.get(reverse("settings_index"))
    assert response.status_code == 403
    assert "你无权访问此页面" in response.content.decode()


def test_a_server_error_page_renders_without_touching_the_database(rep, monkeypatch):
    from leakmap.web.views import today

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(today, "render", broken)
    client = Client(raise_request_exception=False)
    client.force_login(rep)
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    response = client.get("/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "出错了" in page
    assert 'href="/" data-home' in page and "web/app.css" in page

    # The handler itself reads nothing from the database (the failure may be the database).
    request = RequestFactory().get("/", HTTP_REFERER="http://testserver/leads/")
    with CaptureQueriesContext(connection) as queries:
        body = server_error(request).content.decode()
    assert len(queries) == 0
    assert 'href="http://testserver/leads/" data-back' in body


def test_the_favicon_is_served_from_static(client, db):
    from django.contrib.staticfiles import finders

    assert finders.find("web/favicon.svg")
    assert '<link rel="icon"' in client.get("/login/").content.decode()


# --- Required fields -------------------------------------------------------------------------


def test_the_lost_reason_is_marked_required_and_refused_empty(login, rep, rep_deal):
    client = login(rep)
    page = client.get(reverse("deal_lost", args=[rep_deal.pk])).content.decode()
    label = page.split('for="id_lost_reason"')[1].split("</label>")[0]
    assert 'class="req"' in label
    response = client.post(reverse("deal_lost", args=[rep_deal.pk]), {"lost_reason": ""})
    assert response.status_code == 422
    rep_deal.refresh_from_db()
    assert rep_deal.stage.kind == "open"


# --- Today -------------------------------------------------------------------------------------


def _age(deal: Deal, days: float) -> None:
    Deal.objects.filter(pk=deal.pk).update(
        stage_entered_at=timezone.now() - dt.timedelta(days=days),
        next_follow_up=None,
        last_follow_up_at=timezone.now(),
    )


def test_today_lists_the_users_deals_over_their_sla_with_a_count(login, rep, teammate):
    sla = stage("qualification").sla_days
    assert sla is not None
    late = [make_deal(owner=rep, name=f"超时{i}", stage_key="qualification") for i in range(3)]
    fresh = make_deal(owner=rep, name="刚进阶段", stage_key="qualification")
    theirs = make_deal(owner=teammate, name="同事的超时", stage_key="qualification")
    for d in (*late, theirs):
        _age(d, sla + 1)
    _age(fresh, sla - 1)
    page = login(rep).get("/").content.decode()
    assert 'data-count="3"' in page
    for d in late:
        assert f'href="{reverse("deal_detail", args=[d.pk])}">{d.name}' in page
    section = page.split('id="over-sla"')[1].split("</section>")[0]
    assert "刚进阶段" not in section and "同事的超时" not in section
    assert "今天没有到期事项" not in page


def test_today_says_nothing_is_due_only_when_nothing_is(login, rep):
    deal = make_deal(owner=rep, name="正常", stage_key="qualification")
    _age(deal, 0)
    client = login(rep)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    page = client.get("/").content.decode()
    assert 'id="over-sla"' not in page
    assert "Nothing due." in page


def test_today_shows_a_manager_the_unassigned_new_leads(login, rep, manager):
    LeadFactory(owner=None, name="网站来的线索")
    assert "网站来的线索" in login(manager).get("/").content.decode()
    assert "网站来的线索" not in login(rep).get("/").content.decode()


# --- Search ------------------------------------------------------------------------------------


@pytest.fixture
def searchable(rep, outsider):
    mine = LeadFactory(
        owner=rep, name="张伟", company="云帆", phone="13800112345", email="zw@example.com"
    )
    other = LeadFactory(
        owner=outsider,
        name="李雷",
        company="华南云帆",
        phone="13800154321",
        email="ll@example.com",
    )
    deal = make_deal(owner=rep, name="云帆 ERP 8000 套")
    other_deal = make_deal(owner=outsider, name="华南 ERP 8000 套")
    return mine, other, deal, other_deal


def _kinds(page: str) -> set[str]:
    import re

    return set(re.findall(r'data-kind="(\w+)"', page))


@pytest.mark.parametrize(
    ("q", "kinds"),
    [
        ("138001", {"leads"}),  # part of a phone
        ("8000", {"deals"}),  # part of a deal's name (and of no phone here)
        ("example.com", {"leads"}),  # part of an e-mail address
        ("zw@example.com", {"leads"}),  # a whole address
        ("zw@", {"leads"}),  # the start of an address
        ("13800112345", {"leads"}),  # a whole phone number
        ("云帆", {"leads", "deals"}),
    ],
)
def test_search_finds_partial_matches_and_only_what_a_rep_may_see(login, searchable, q, kinds):
    mine, other, deal, other_deal = searchable
    page = login(mine.owner).get(reverse("search"), {"q": q}).content.decode()
    assert _kinds(page) == kinds, q
    for outsider_record in (other, other_deal):
        assert outsider_record.name not in page, q
    assert "13800154321" not in page and "ll@example.com" not in page


def test_search_shows_an_admin_every_team_and_says_when_nothing_matches(
    login, admin_user, searchable
):
    client = login(admin_user)
    page = client.get(reverse("search"), {"q": "138001"}).content.decode()
    assert "张伟" in page and "李雷" in page
    empty = client.get(reverse("search"), {"q": "zzqx"}).content.decode()
    assert 'id="no-results"' in empty and not _kinds(empty)


def test_search_limits_each_kind_and_links_to_the_filtered_list(login, rep):
    for i in range(12):
        LeadFactory(owner=rep, name=f"Acme {i:02d}")
    page = login(rep).get(reverse("search"), {"q": "acme"}).content.decode()
    section = page.split('id="results-leads"')[1].split("</section>")[0]
    assert section.count("<li>") == 10
    assert f'href="{reverse("lead_list")}?q=acme" data-more' in section


def test_the_lead_list_finds_the_same_partial_phone(login, searchable):
    mine = searchable[0]
    page = login(mine.owner).get(reverse("lead_list"), {"q": "138001"}).content.decode()
    assert "张伟" in page and "李雷" not in page


def test_every_page_has_the_search_box(login, rep):
    page = login(rep).get(reverse("lead_list")).content.decode()
    assert f'action="{reverse("search")}" class="topsearch"' in page


def test_search_is_for_signed_in_users(client, db):
    response = client.get(reverse("search"), {"q": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- New deal ----------------------------------------------------------------------------------


def _new_deal(**overrides) -> dict:
    return {
        "name": "直接新建的商机",
        "amount": "50000",
        "stage": stage("qualification").pk,
        "expected_close_date": "2027-03-20",
        "account_name": "新客户公司",
        "contact_name": "王经理",
        "contact_phone": "13900001111",
        "contact_email": "wang@example.com",
        **overrides,
    }


def test_a_rep_creates_a_deal_with_a_new_account_and_contact(login, rep):
    client = login(rep)
    assert 'name="owner"' in client.get(reverse("deal_create")).content.decode()
    response = client.post(reverse("deal_create"), _new_deal(owner=rep.pk))
    deal = Deal.objects.get(name="直接新建的商机")
    assert response.status_code == 302
    assert response["Location"] == reverse("deal_detail", args=[deal.pk])
    assert (deal.owner, deal.amount, deal.stage.key) == (rep, Decimal("50000"), "qualification")
    assert deal.expected_close_date == dt.date(2027, 3, 20)
    assert deal.account.name == "新客户公司" and deal.account.owner == rep
    assert deal.contact.name == "王经理" and deal.contact.account == deal.account
    assert deal.contact.phone == "13900001111"
    assert StageChange.objects.filter(deal=deal, by=rep).count() == 1


def test_it_reuses_an_account_the_user_sees_by_its_name(login, rep, rep_deal):
    from leakmap.crm import services

    account = services.account_create(name="已有客户", owner=rep)
    login(rep).post(
        reverse("deal_create"),
        _new_deal(
            owner=rep.pk,
            account_name="已有客户",
            contact_name="",
            contact_phone="",
            contact_email="",
        ),
    )
    assert Deal.objects.get(name="直接新建的商机").account == account
    assert Account.objects.filter(name="已有客户").count() == 1


def test_a_rep_may_give_a_new_deal_to_a_teammate_but_not_to_another_team(
    login, rep, teammate, outsider
):
    client = login(rep)
    refused = client.post(reverse("deal_create"), _new_deal(owner=outsider.pk))
    assert refused.status_code == 422
    assert "owner" in refused.context["form"].errors
    assert not Deal.objects.exists()
    assert not Account.objects.exists() and not Contact.objects.exists()
    client.post(reverse("deal_create"), _new_deal(owner=teammate.pk))
    assert Deal.objects.get().owner == teammate


def test_a_refused_deal_leaves_no_account_or_contact_behind(login, rep):
    # The proposal stage requires an expected close date (crm.services refuses it): the
    # account and contact made first must go with the deal.
    response = login(rep).post(
        reverse("deal_create"),
        _new_deal(owner=rep.pk, stage=stage("proposal").pk, expected_close_date=""),
    )
    assert response.status_code == 422
    assert "expected_close_date" in response.context["form"].errors
    assert not Deal.objects.exists()
    assert not Account.objects.exists() and not Contact.objects.exists()


def test_a_new_deal_names_what_is_wrong(login, rep):
    response = login(rep).post(
        reverse("deal_create"), _new_deal(owner=rep.pk, name="", amount="-1", contact_name="")
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert {"name", "amount", "contact_name"} <= errors.keys()
    assert not Deal.objects.exists()
