"""The record lists: sorting, saved views, bulk actions and inline edit (views, both DBs)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone, translation

from leakmap.accounts.models import SavedView
from leakmap.crm import services
from leakmap.crm.models import Activity, Contact, Deal, Lead, StageChange
from leakmap.web.forms import LeadFilterForm
from tests.factories import T0, LeadFactory, make_deal, stage


def names(response) -> list[str]:
    return [row.name for row in response.context["page"]]


def snapshot() -> dict:
    return {
        m.__name__: list(m.objects.order_by("pk").values())
        for m in (Lead, Deal, Activity, StageChange)
    }


@pytest.fixture
def sortable_leads(rep, source):
    """Five leads whose budgets tie and are empty, so the tie-break and the empty values show."""
    rows = [("b", 300, 2), ("a", None, 4), ("d", 100, 1), ("c", 300, 3), ("e", None, 0)]
    return [
        LeadFactory(
            owner=rep,
            source=source,
            name=name,
            budget=None if budget is None else Decimal(budget),
            created_at=T0 + dt.timedelta(days=day),
        )
        for name, budget, day in rows
    ]


# --- Sorting -------------------------------------------------------------------------------------


def test_it_sorts_the_lead_list_by_a_column_both_ways(login, rep, sortable_leads):
    client = login(rep)
    assert names(client.get("/leads/?sort=name")) == ["a", "b", "c", "d", "e"]
    assert names(client.get("/leads/?sort=-name")) == ["e", "d", "c", "b", "a"]
    # Default: newest first.
    assert names(client.get("/leads/")) == ["a", "c", "b", "d", "e"]


def test_it_breaks_ties_by_id_and_puts_empty_values_last_in_both_directions(
    login, rep, sortable_leads
):
    client = login(rep)
    b, a, d, c, e = sortable_leads
    assert names(client.get("/leads/?sort=budget")) == ["d", "b", "c", "a", "e"]
    assert names(client.get("/leads/?sort=-budget")) == ["c", "b", "d", "e", "a"]


def test_it_ignores_a_sort_that_is_not_a_column(login, rep, sortable_leads):
    client = login(rep)
    response = client.get("/leads/?sort=owner__password")
    assert response.status_code == 200
    assert names(response) == ["a", "c", "b", "d", "e"]
    assert not response.context["sort"].chosen


def test_it_shows_the_sorted_column_with_its_arrow_and_the_next_click(login, rep, sortable_leads):
    html = login(rep).get("/leads/?sort=name&status=new").content.decode()
    assert 'aria-sort="ascending"' in html
    # The next click on the sorted column sorts it descending, with the filter kept.
    assert "?sort=-name&amp;status=new" in html or "?status=new&amp;sort=-name" in html
    assert "▲" in html


def test_it_keeps_the_sort_on_the_next_page_and_in_the_filters(login, rep, source):
    for i in range(55):
        LeadFactory(owner=rep, source=source, name=f"L{i:02d}")
    client = login(rep)
    first = client.get("/leads/?sort=-name")
    assert names(first)[0] == "L54"
    html = first.content.decode()
    assert "page=2" in html and "sort=-name" in html
    assert '<input type="hidden" name="sort" value="-name">' in html
    second = client.get("/leads/?sort=-name&page=2")
    assert names(second) == ["L04", "L03", "L02", "L01", "L00"]


def test_it_sorts_deals_by_stage_order_and_owner_name(login, manager, rep, teammate):
    make_deal(owner=teammate, name="x", stage_key="proposal")
    make_deal(owner=rep, name="y", stage_key="qualification")
    make_deal(owner=rep, name="z", stage_key="negotiation")
    client = login(manager)
    assert names(client.get("/deals/list/?sort=stage")) == ["y", "x", "z"]
    # Alice before Bob (display names).
    assert names(client.get("/deals/list/?sort=owner")) == ["y", "z", "x"]


def test_it_sorts_accounts_and_contacts(login, admin_user):
    for n in ("b", "a", "c"):
        account = services.account_create(name=n, owner=admin_user)
        services.contact_create(name=n.upper(), account=account, owner=admin_user)
    client = login(admin_user)
    assert names(client.get("/accounts/?sort=-name")) == ["c", "b", "a"]
    assert names(client.get("/contacts/?sort=account")) == ["A", "B", "C"]
    assert names(client.get("/contacts/?sort=-name&q=B")) == ["B"]


def test_it_downloads_in_the_lists_order_when_sorted(login, rep, sortable_leads):
    client = login(rep)
    body = b"".join(client.get("/leads/export.csv?sort=name").streaming_content).decode()
    assert [r["name"] for r in csv.DictReader(io.StringIO(body))] == ["a", "b", "c", "d", "e"]
    # Unsorted, the file keeps the import's order: oldest first.
    body = b"".join(client.get("/leads/export.csv").streaming_content).decode()
    assert [r["name"] for r in csv.DictReader(io.StringIO(body))] == ["e", "d", "b", "c", "a"]


# --- Saved views ---------------------------------------------------------------------------------


def test_it_saves_the_filters_and_sort_as_a_view_and_offers_it(login, rep, source):
    client = login(rep)
    query = f"status=new&source={source.pk}&sort=-budget&page=3"
    response = client.post("/leads/views/", {"name": "新线索", "query": query})
    assert response.status_code == 302
    view = SavedView.objects.get(owner=rep)
    assert (view.kind, view.name, view.shared) == ("lead", "新线索", False)
    assert view.query == f"status=new&source={source.pk}&sort=-budget"  # the page dropped
    assert response["Location"].endswith(f"/leads/?{view.query}")
    html = client.get("/leads/").content.decode()
    assert "新线索" in html and view.query.replace("&", "&amp;") in html


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("owner__password=x", "owner__password"),
        ("sort=password", "password"),
        ("status=sold", "sold"),
        ("created_from=tomorrow", None),
    ],
)
def test_it_refuses_a_view_whose_query_the_list_does_not_know(login, rep, query, named):
    response = login(rep).post("/leads/views/", {"name": "坏", "query": query}, follow=False)
    assert response.status_code == 422
    if named is None:  # a bad value: the message names the field, in the page's language
        with translation.override("zh-hans"):
            named = str(LeadFilterForm.base_fields["created_from"].label)
    assert named in response.content.decode()
    assert not SavedView.objects.exists()


def test_it_refuses_a_view_without_a_name(login, rep):
    response = login(rep).post("/deals/views/", {"name": "", "query": "sort=amount"})
    assert response.status_code == 422
    assert not SavedView.objects.exists()


def test_it_refuses_an_owner_filter_a_rep_does_not_have(login, rep, outsider):
    response = login(rep).post("/leads/views/", {"name": "x", "query": f"owner={outsider.pk}"})
    assert response.status_code == 422
    assert not SavedView.objects.exists()


def test_it_shares_a_managers_view_with_the_team_only(
    client, manager, rep, teammate, outsider, admin_user
):
    client.force_login(manager)
    client.post("/deals/views/", {"name": "团队大单", "query": "sort=-amount", "share": "1"})
    client.force_login(rep)
    client.post("/deals/views/", {"name": "我的", "query": "sort=name", "share": "1"})
    # A rep cannot share: refused, nothing saved.
    assert [v.name for v in SavedView.objects.all()] == ["团队大单"]
    view = SavedView.objects.get()
    assert view.shared and view.team == manager.team

    def offered(user):
        c = Client()
        c.force_login(user)
        return [v.name for v in c.get("/deals/list/").context["saved_views"]]

    assert offered(teammate) == ["团队大单"]
    assert offered(rep) == ["团队大单"]
    assert offered(outsider) == []

    client.force_login(admin_user)
    client.post("/leads/views/", {"name": "全公司", "query": "status=new", "share": "1"})
    c = Client()
    c.force_login(outsider)
    assert [v.name for v in c.get("/leads/").context["saved_views"]] == ["全公司"]


def test_it_lets_only_the_owner_delete_a_view(login, client, manager, teammate):
    view = SavedView.objects.create(
        owner=manager, kind="deal", name="v", query="", shared=True, team=manager.team
    )
    client.force_login(teammate)
    assert client.post(f"/views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()
    client.force_login(manager)
    assert client.post(f"/views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.filter(pk=view.pk).exists()


def test_it_requires_the_csrf_token_for_every_list_write(rep, rep_lead, rep_deal):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    before = snapshot()
    posts = [
        ("/leads/views/", {"name": "x", "query": ""}),
        ("/leads/bulk/", {"action": "delete", "ids": [rep_lead.pk]}),
        ("/deals/bulk/", {"action": "delete", "ids": [rep_deal.pk]}),
        (f"/leads/{rep_lead.pk}/inline/status/", {"status": "contacted"}),
        (f"/deals/{rep_deal.pk}/inline/amount/", {"amount": "1"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert snapshot() == before
    assert not SavedView.objects.exists()
    # The pages carry the token for their forms.
    html = client.get("/leads/").content.decode()
    assert html.count("csrfmiddlewaretoken") >= 2  # saved view form, bulk form


# --- Bulk actions --------------------------------------------------------------------------------


def test_it_assigns_the_selected_leads_to_a_teammate(login, rep, teammate, source):
    leads = [LeadFactory(owner=rep, source=source) for _ in range(3)]
    client = login(rep)
    response = client.post(
        "/leads/bulk/",
        {
            "action": "assign",
            "owner": teammate.pk,
            "ids": [leads[0].pk, leads[1].pk],
            "back": "sort=name",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("/leads/?sort=name")
    owners = dict(Lead.objects.values_list("pk", "owner_id"))
    assert owners == {leads[0].pk: teammate.pk, leads[1].pk: teammate.pk, leads[2].pk: rep.pk}


def test_it_refuses_handing_leads_to_someone_outside_the_reps_reach(login, rep, outsider, rep_lead):
    before = snapshot()
    response = login(rep).post(
        "/leads/bulk/", {"action": "assign", "owner": outsider.pk, "ids": [rep_lead.pk]}
    )
    assert response.status_code == 422
    assert snapshot() == before


def test_it_refuses_the_whole_action_when_one_row_is_not_the_users(login, rep, rep_lead, outsider):
    theirs = LeadFactory(owner=outsider)
    before = snapshot()
    response = login(rep).post(
        "/leads/bulk/", {"action": "delete", "ids": [rep_lead.pk, theirs.pk]}
    )
    assert response.status_code == 422
    assert snapshot() == before


def test_it_refuses_contacts_seen_through_a_deal_and_names_them(login, rep, outsider, teammate):
    """Seeing is not owning: the rep sees the outsider's contact through a deal of their own."""
    theirs = services.contact_create(name="外部联系人", owner=outsider)
    mine = services.contact_create(name="我的联系人", owner=rep)
    make_deal(owner=rep, contact=theirs)
    owners = dict(Contact.objects.values_list("pk", "owner_id"))
    response = login(rep).post(
        "/contacts/bulk/", {"action": "assign", "owner": teammate.pk, "ids": [mine.pk, theirs.pk]}
    )
    assert response.status_code == 403
    message = " ".join(str(m) for m in response.context["messages"])
    assert "外部联系人" in message and "我的联系人" not in message
    assert dict(Contact.objects.values_list("pk", "owner_id")) == owners


def test_it_moves_deals_and_refuses_all_when_one_lacks_a_required_field(login, rep):
    target = stage("proposal")
    target.required_fields = ["next_follow_up"]
    target.save()
    ready = make_deal(owner=rep, name="有跟进", next_follow_up=timezone.now())
    lacking = make_deal(owner=rep, name="缺跟进")
    client = login(rep)
    before = snapshot()
    response = client.post(
        "/deals/bulk/", {"action": "stage", "stage": target.pk, "ids": [ready.pk, lacking.pk]}
    )
    assert response.status_code == 422
    message = " ".join(str(m) for m in response.context["messages"])
    assert "缺跟进" in message and "有跟进" not in message
    assert snapshot() == before

    response = client.post(
        "/deals/bulk/", {"action": "stage", "stage": target.pk, "ids": [ready.pk]}
    )
    assert response.status_code == 302
    ready.refresh_from_db()
    assert ready.stage == target
    assert StageChange.objects.filter(deal=ready, to_stage=target, by=rep).count() == 1


def test_it_sets_the_next_follow_up_on_deals_and_leads(login, rep, rep_deal, rep_lead):
    client = login(rep)
    when = "2027-03-20T10:30"
    assert (
        client.post(
            "/deals/bulk/", {"action": "follow_up", "due_at": when, "ids": [rep_deal.pk]}
        ).status_code
        == 302
    )
    rep_deal.refresh_from_db()
    assert timezone.localtime(rep_deal.next_follow_up).strftime("%Y-%m-%dT%H:%M") == when
    client.post("/leads/bulk/", {"action": "follow_up", "due_at": when, "ids": [rep_lead.pk]})
    task = Activity.objects.get(lead=rep_lead, kind="task")
    assert task.owner == rep and task.done_at is None
    assert timezone.localtime(task.due_at).strftime("%Y-%m-%dT%H:%M") == when


def test_it_deletes_the_selected_deals_through_the_service(login, rep, rep_deal):
    other = make_deal(owner=rep, name="留下")
    response = login(rep).post("/deals/bulk/", {"action": "delete", "ids": [rep_deal.pk]})
    assert response.status_code == 302
    assert list(Deal.objects.values_list("name", flat=True)) == ["留下"]
    assert not StageChange.objects.filter(deal_id=rep_deal.pk).exists()
    del other


def test_it_asks_for_a_selection(login, rep):
    response = login(rep).post("/leads/bulk/", {"action": "delete"})
    assert response.status_code == 422
    assert "请至少选择一行" in " ".join(str(m) for m in response.context["messages"])


def test_a_get_of_a_bulk_address_goes_back_to_the_list(login, rep):
    response = login(rep).get("/deals/bulk/?sort=amount&page=2")
    assert response.status_code == 302
    assert response["Location"] == "/deals/list/?sort=amount&page=2"


# --- Inline edit ---------------------------------------------------------------------------------


def htmx(client, method, url, data=None):
    return getattr(client, method)(url, data or {}, headers={"HX-Request": "true"})


def test_it_edits_a_leads_status_in_its_row(login, rep, rep_lead):
    client = login(rep)
    form = htmx(client, "get", f"/leads/{rep_lead.pk}/inline/status/")
    assert form.status_code == 200
    html = form.content.decode()
    assert html.lstrip().startswith("<tr") and 'name="status"' in html
    assert 'value="converted"' not in html  # converting has its own page
    row = htmx(client, "post", f"/leads/{rep_lead.pk}/inline/status/", {"status": "contacted"})
    assert row.status_code == 200 and 'name="status"' not in row.content.decode()
    rep_lead.refresh_from_db()
    assert rep_lead.status == "contacted"


def test_it_edits_a_deals_amount_and_refuses_a_negative_one(login, rep, rep_deal):
    client = login(rep)
    url = f"/deals/{rep_deal.pk}/inline/amount/"
    bad = htmx(client, "post", url, {"amount": "-5"})
    assert bad.status_code == 422 and 'name="amount"' in bad.content.decode()
    rep_deal.refresh_from_db()
    assert rep_deal.amount == Decimal("120000")
    ok = htmx(client, "post", url, {"amount": "150000"})
    assert ok.status_code == 200
    rep_deal.refresh_from_db()
    assert rep_deal.amount == Decimal("150000")


def test_it_hands_a_deal_over_in_its_row_only_within_reach(
    login, rep, teammate, outsider, rep_deal
):
    client = login(rep)
    url = f"/deals/{rep_deal.pk}/inline/owner/"
    assert htmx(client, "post", url, {"owner": outsider.pk}).status_code == 422
    assert htmx(client, "post", url, {"owner": teammate.pk}).status_code == 200
    rep_deal.refresh_from_db()
    assert rep_deal.owner == teammate


def test_it_refuses_inline_edit_of_a_record_the_user_may_not_change(
    login, teammate, rep_deal, manager
):
    client = login(teammate)
    assert htmx(client, "get", f"/deals/{rep_deal.pk}/inline/amount/").status_code == 404
    assert (
        htmx(client, "post", f"/deals/{rep_deal.pk}/inline/amount/", {"amount": "1"}).status_code
        == 404
    )
    assert htmx(login(manager), "get", f"/deals/{rep_deal.pk}/inline/name/").status_code == 404
    rep_deal.refresh_from_db()
    assert rep_deal.amount == Decimal("120000")


def test_it_pages_a_sorted_list_by_ids_first_in_the_same_order(login, admin_user, source):
    """The sorted list's two queries (ids, then rows) give the rows in the ids' order."""
    for i, budget in enumerate([5, 1, 4, 2, 3] * 12):
        LeadFactory(owner=admin_user, source=source, name=f"n{i:02d}", budget=Decimal(budget))
    client = login(admin_user)
    first = client.get("/leads/?sort=-budget")
    budgets = [row.budget for row in first.context["page"]]
    assert budgets == sorted(budgets, reverse=True) and len(budgets) == 50
    second = client.get("/leads/?sort=-budget&page=2")
    assert [row.budget for row in second.context["page"]] == [Decimal(1)] * 10
    seen = [r.pk for r in first.context["page"]] + [r.pk for r in second.context["page"]]
    assert len(set(seen)) == 60
