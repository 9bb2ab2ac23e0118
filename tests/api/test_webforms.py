from __future__ import annotations

import re
import time

import pytest
from django.core.cache import cache
from django.test import Client

from leakmap.api import webforms
from leakmap.api.models import WebForm
from leakmap.crm.models import Activity, Lead
from tests.factories import LeadFactory, SourceFactory


@pytest.fixture(autouse=True)
def _empty_cache(db):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def form(rep):
    return WebForm.objects.create(
        name="官网试用申请",
        slug="trial",
        fields=["company", "email", "phone", "message"],
        source=SourceFactory(name="官网"),
        owner=rep,
        thank_you_text="谢谢，我们会尽快联系您。",
        allowed_origins="https://www.example.com\nhttps://shop.example.com",
    )


def _post(form, data=None, *, ip="203.0.113.5", age=10, headers=None, path_query=""):
    payload = {"name": "张三", "email": "zhang@example.com", **(data or {})}
    payload.setdefault("_ts", webforms.sign_timestamp(form, now=time.time() - age))
    return Client(REMOTE_ADDR=ip).post(
        f"/api/forms/{form.slug}/{path_query}", payload, headers=headers or {}
    )


def test_it_creates_a_lead_with_source_owner_utm_and_referrer(form, rep):
    response = _post(
        form,
        {"company": "华东制造", "utm_source": "baidu", "utm_medium": "cpc"},
        headers={"Referer": "https://www.example.com/landing?utm_campaign=spring"},
    )
    assert response.status_code == 200
    assert "谢谢，我们会尽快联系您。" in response.content.decode()
    lead = Lead.objects.get()
    assert (lead.name, lead.company, lead.email) == ("张三", "华东制造", "zhang@example.com")
    assert (lead.source.name, lead.owner) == ("官网", rep)
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("baidu", "cpc", "spring")
    assert lead.referrer == "https://www.example.com/landing?utm_campaign=spring"


def test_it_takes_utm_parameters_from_the_hosted_pages_url(form):
    page = Client().get("/api/forms/trial/?utm_source=wechat&utm_campaign=expo")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="utm_source" value="wechat"' in html
    assert "X-Frame-Options" not in page.headers  # the hosted page may sit in an iframe
    action = re.search(r'action="([^"]+)"', html)[1]
    assert action.endswith("/api/forms/trial/?utm_source=wechat&amp;utm_campaign=expo")

    response = _post(form, path_query="?utm_source=wechat&utm_campaign=expo")
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert (lead.utm_source, lead.utm_campaign) == ("wechat", "expo")


def test_it_redirects_when_the_form_says_so(form):
    form.redirect_url = "https://www.example.com/thanks"
    form.save()
    response = _post(form)
    assert response.status_code == 303
    assert response["Location"] == "https://www.example.com/thanks"


def test_it_rejects_a_filled_honeypot(form):
    response = _post(form, {webforms.HONEYPOT: "http://spam.example"})
    assert response.status_code == 400
    assert Lead.objects.count() == 0


def test_it_rejects_a_form_filled_faster_than_a_person_can(form):
    response = _post(form, age=0)
    assert response.status_code == 400
    assert Lead.objects.count() == 0
    missing = _post(form, {"_ts": "forged"})
    assert missing.status_code == 400
    other_form = WebForm.objects.create(name="b", slug="other")
    foreign = _post(form, {"_ts": webforms.sign_timestamp(other_form, now=time.time() - 60)})
    assert foreign.status_code == 400
    assert Lead.objects.count() == 0


def test_it_refuses_a_token_older_than_a_day_and_asks_to_reload(form):
    day = 86400  # LEAKMAP_WEBFORM_TOKEN_MAX_AGE's default
    assert _post(form, {"email": "fresh@example.com"}, age=day - 60).status_code == 200
    old = _post(form, {"email": "stale@example.com"}, age=day + 60)
    assert old.status_code == 400
    assert "表单已过期" in old.content.decode() and "刷新页面" in old.content.decode()
    as_json = _post(
        form,
        {"email": "stale@example.com"},
        age=day + 60,
        headers={"Accept": "application/json", "Accept-Language": "en"},
    )
    assert as_json.status_code == 400
    assert "reload the page" in as_json.json()["detail"][0]["message"]
    assert not Lead.objects.filter(email="stale@example.com").exists()


def test_it_reads_the_token_lifetime_from_settings(form, settings):
    settings.LEAKMAP_WEBFORM_TOKEN_MAX_AGE = 60
    assert _post(form, {"email": "a@example.com"}, age=59).status_code == 200
    assert _post(form, {"email": "b@example.com"}, age=61).status_code == 400
    settings.LEAKMAP_WEBFORM_TOKEN_MAX_AGE = 0  # never expires
    assert _post(form, {"email": "c@example.com"}, age=400 * 86400).status_code == 200
    # A token dated in the future is forged or from a wrong clock.
    assert _post(form, {"email": "d@example.com"}, age=-3600).status_code == 400
    assert sorted(Lead.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "c@example.com",
    ]


def test_it_refuses_a_token_of_one_form_replayed_on_another(form):
    other = WebForm.objects.create(name="展会登记", slug="expo", source=form.source)
    token = webforms.sign_timestamp(other, now=time.time() - 10)  # served 10 s ago, for expo
    replayed = _post(form, {"_ts": token, "email": "replay@example.com"})
    assert replayed.status_code == 400
    assert "刷新页面" in replayed.content.decode()
    assert not Lead.objects.exists()
    # The same token is good on its own form.
    assert _post(other, {"_ts": token, "email": "replay@example.com"}).status_code == 200
    assert Lead.objects.count() == 1


def test_it_names_the_fields_at_fault(form):
    response = _post(form, {"name": "", "email": "not-an-email"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "请填写您的姓名。" in html
    assert "请输入有效的电子邮箱地址。" in html
    json_response = Client(REMOTE_ADDR="198.51.100.1").post(
        "/api/forms/trial/",
        {"name": "", "email": "nope", "_ts": webforms.sign_timestamp(form, now=time.time() - 10)},
        headers={"Accept": "application/json"},
    )
    assert json_response.status_code == 400
    assert {d["field"] for d in json_response.json()["detail"]} == {"name", "email"}
    no_contact = _post(form, {"email": ""}, ip="198.51.100.2")
    assert no_contact.status_code == 400
    assert Lead.objects.count() == 0


def test_it_rate_limits_per_ip_with_retry_after(form):
    for i in range(webforms.RATE_LIMIT):
        assert _post(form, {"email": f"p{i}@example.com"}).status_code == 200
    blocked = _post(form, {"email": "one-more@example.com"})
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= webforms.RATE_WINDOW + 1
    assert Lead.objects.count() == webforms.RATE_LIMIT
    # Another address is not affected.
    assert _post(form, {"email": "other@example.com"}, ip="198.51.100.7").status_code == 200


def test_it_adds_an_activity_to_an_existing_lead_instead_of_a_duplicate(form, teammate):
    existing = LeadFactory(owner=teammate, email="Zhang@Example.com", phone="")
    response = _post(form, {"message": "想了解价格", "utm_source": "baidu"})
    assert response.status_code == 200
    assert Lead.objects.count() == 1
    activity = Activity.objects.get()
    assert (activity.lead, activity.owner, activity.kind) == (existing, teammate, "note")
    assert "想了解价格" in activity.notes
    assert "utm_source: baidu" in activity.notes

    by_phone = LeadFactory(owner=teammate, email="", phone="13800000000")
    _post(form, {"email": "", "phone": "13800000000"}, ip="198.51.100.3")
    assert Lead.objects.count() == 2
    assert Activity.objects.filter(lead=by_phone).count() == 1


def test_it_answers_cors_only_for_configured_origins(form):
    ok = Client().options(
        "/api/forms/trial/",
        headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status_code == 204
    assert ok["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in ok["Access-Control-Allow-Methods"]

    evil = Client().options("/api/forms/trial/", headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert "Access-Control-Allow-Origin" not in evil.headers

    posted = _post(
        form, headers={"Origin": "https://www.example.com", "Accept": "application/json"}
    )
    assert posted.status_code == 201
    assert posted.json() == {"ok": True}
    assert posted["Access-Control-Allow-Origin"] == "https://www.example.com"
    foreign = _post(form, {"email": "b@example.com"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_it_uses_the_assignment_rules_when_asked(form, rep, teammate, team):
    from leakmap.automation.models import AssignmentRule, LeadAssignment

    form.owner = None
    form.use_assignment_rules = True
    form.save()
    AssignmentRule.objects.create(name="官网线索", team=team, source=form.source)
    _post(form, {"email": "a@example.com"})
    _post(form, {"email": "b@example.com"})
    owners = list(Lead.objects.order_by("id").values_list("owner__username", flat=True))
    # Round robin over the team's reps: each gets one, in the same request as the submission.
    assert sorted(owners) == ["alice", "bob"]
    assert LeadAssignment.objects.count() == 2


def test_it_keeps_the_lead_when_assignment_fails(form, monkeypatch):
    from leakmap.automation import assignment

    form.owner = None
    form.use_assignment_rules = True
    form.save()

    def broken(*args, **kwargs):
        raise RuntimeError("rules table unreadable")

    monkeypatch.setattr(assignment, "assign_unowned_leads", broken)
    assert _post(form).status_code == 200
    assert Lead.objects.get().owner is None


def test_it_leaves_the_lead_unowned_when_no_owner_and_no_rule(
    form, django_capture_on_commit_callbacks
):
    form.owner = None
    form.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(form).status_code == 200
    assert Lead.objects.get().owner is None


def test_it_hides_inactive_forms(form):
    form.is_active = False
    form.save()
    assert _post(form).status_code == 404
    assert Client().get("/api/forms/trial/").status_code == 404


def test_it_shows_admins_an_embed_snippet_that_posts_without_javascript(form, admin_user):
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/api/webform/{form.pk}/change/").content.decode()
    assert "&lt;form method=&quot;post&quot;" in page
    assert "/api/forms/trial/" in page
    assert "&lt;script" not in page.split("embed")[1][:4000]

    # The snippet itself, posted as a browser would, creates the lead.
    import html as html_lib

    snippet = html_lib.unescape(
        re.search(r"<textarea readonly[^>]*>(.*?)</textarea>", page, re.S)[1]
    )
    names = set(re.findall(r'name="([^"]+)"', snippet))
    assert {"name", "company", "email", "phone", "message", "website", "_ts"} <= names
    ts = re.search(r'name="_ts" value="([^"]+)"', snippet)[1]
    stamp = webforms.signing.loads(ts, salt="leakmap.webform")
    assert stamp["f"] == form.pk


def test_it_lets_an_admin_create_a_form_in_the_admin(admin_user, rep):
    client = Client()
    client.force_login(admin_user)
    source = SourceFactory(name="展会")
    response = client.post(
        "/admin/api/webform/add/",
        {
            "name": "展会登记",
            "slug": "expo",
            "fields": ["company", "phone"],
            "source": source.pk,
            "owner": rep.pk,
            "thank_you_text": "谢谢",
            "redirect_url": "",
            "allowed_origins": "https://expo.example.com",
            "min_fill_seconds": "3",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    form = WebForm.objects.get(slug="expo")
    assert (form.fields, form.source, form.owner) == (["company", "phone"], source, rep)
    assert form.shown_fields == ["name", "company", "phone"]

    both = client.post(
        "/admin/api/webform/add/",
        {
            "name": "x",
            "slug": "x",
            "owner": rep.pk,
            "use_assignment_rules": "on",
            "allowed_origins": "https://ok.example.com/path",
            "min_fill_seconds": "3",
        },
    )
    assert both.status_code == 200
    assert not WebForm.objects.filter(slug="x").exists()


def test_the_embed_snippet_points_at_the_servers_address_not_a_default_port(
    form, admin_user, settings
):
    client = Client(HTTP_HOST="crm.example.org")
    settings.ALLOWED_HOSTS = ["crm.example.org"]
    client.force_login(admin_user)
    settings.SITE_URL_CONFIGURED = False
    page = client.get(f"/admin/api/webform/{form.pk}/change/").content.decode()
    assert "http://crm.example.org/api/forms/trial/" in page
    assert ":8000" not in page

    settings.SITE_URL_CONFIGURED = True
    settings.SITE_URL = "https://leads.example.net"
    page = client.get(f"/admin/api/webform/{form.pk}/change/").content.decode()
    assert "https://leads.example.net/api/forms/trial/" in page
    assert "crm.example.org/api/forms" not in page
