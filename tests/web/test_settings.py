"""The settings pages for stages, workflow and assignment rules, web forms, webhooks and lookup
lists: what an admin may change, what each form refuses (and that a refusal writes nothing),
and what managers and reps may not do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from leakmap.api.models import WebForm, Webhook, WebhookDelivery, webhook_url_error
from leakmap.automation.models import AssignmentRule, Rule, RuleKey
from leakmap.crm import services
from leakmap.crm.models import Deal, Industry, Source, Stage, StageChange
from tests.crm.test_deal_tally import assert_tally_matches as assert_deal_tally_matches
from tests.crm.test_history_tally import assert_tallies_match as assert_history_tallies_match
from tests.crm.test_lost_tally import assert_tally_matches as assert_lost_tally_matches
from tests.factories import T0, TeamFactory, UserFactory, days, lost_reason, make_deal, stage


def stage_post(**overrides) -> dict:
    data = {
        "label_zh": "现场演示",
        "label_en": "Site visit",
        "probability": "30",
        "sla_days": "5",
        "entry_criteria_zh": "客户同意上门演示",
        "required_fields": ["amount", "industry"],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def pipeline_rows() -> list:
    return list(Stage.objects.order_by("pk").values())


# --- Stages ------------------------------------------------------------------------------------


def test_it_adds_a_stage_before_won_and_keeps_every_fact_a_recount_gives(login, admin_user, rep):
    won_deal = make_deal(owner=rep, name="won")
    services.deal_move(deal=won_deal, stage=stage("proposal"), at=T0 + days(1))
    services.deal_close_won(deal=won_deal, at=T0 + days(2))
    lost_deal = make_deal(owner=rep, name="lost", stage_key="negotiation")
    services.deal_close_lost(deal=lost_deal, lost_reason=lost_reason(), at=T0 + days(3))
    open_deal = make_deal(owner=rep, name="open", stage_key="verbal")
    old_won, old_lost = stage("won").order, stage("lost").order

    response = login(admin_user).post(reverse("settings_stage_create"), stage_post())

    assert response.status_code == 302
    new = Stage.objects.get(label_en="Site visit")
    assert (new.kind, new.probability, new.sla_days) == ("open", 30, 5)
    assert new.required_fields == ["amount", "industry"]
    assert new.order == old_won  # after the last open stage
    assert (stage("won").order, stage("lost").order) == (old_won + 1, old_lost + 1)
    won_deal.refresh_from_db()
    open_deal.refresh_from_db()
    assert won_deal.reached_order == stage("won").order
    assert open_deal.reached_order == stage("verbal").order

    kept = (
        list(Deal.objects.order_by("pk").values_list("pk", "reached_order", "lost_at_stage_id")),
        list(StageChange.objects.order_by("pk").values_list("pk", "left_at", "reached_before")),
    )
    services.deals_refresh_stage_facts()
    services.stage_entries_refresh_facts()
    assert kept == (
        list(Deal.objects.order_by("pk").values_list("pk", "reached_order", "lost_at_stage_id")),
        list(StageChange.objects.order_by("pk").values_list("pk", "left_at", "reached_before")),
    )
    assert_deal_tally_matches()
    assert_lost_tally_matches()
    assert_history_tallies_match()


def test_it_generates_a_unique_key_and_never_shows_it(login, admin_user):
    client = login(admin_user)
    client.post(reverse("settings_stage_create"), stage_post())
    client.post(
        reverse("settings_stage_create"),
        stage_post(label_zh="第二次演示", label_en="Site visit 2"),
    )
    keys = set(Stage.objects.filter(label_en__startswith="Site").values_list("key", flat=True))
    assert keys == {"site_visit", "site_visit_2"}
    page = client.get(reverse("settings_stages")).content.decode()
    assert "现场演示" in page
    for key in ("site_visit", "needs_analysis", "proposal_review"):
        assert key not in page
    # Required fields by their names, not their codes.
    row = page.split('data-stage="Site visit"', 1)[1].split("</tr>", 1)[0]
    assert "金额, 行业" in row
    client.post(reverse("set_language"), {"language": "en"})
    page = client.get(reverse("settings_stages")).content.decode()
    row = page.split('data-stage="Site visit"', 1)[1].split("</tr>", 1)[0]
    assert "Amount, Industry" in row


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"probability": "120"}, "probability"),
        ({"probability": "-5"}, "probability"),
        ({"probability": ""}, "probability"),
        ({"sla_days": "-1"}, "sla_days"),
        ({"label_zh": ""}, "label_zh"),
        ({"label_en": "Closed won"}, "label_en"),  # another stage's label
        ({"label_zh": "赢单"}, "label_zh"),
        ({"label_en": "proposal"}, "label_en"),  # another stage's key: imports match by both
        ({"required_fields": ["amount", "favourite_colour"]}, "required_fields"),
    ],
)
def test_it_refuses_a_bad_new_stage_and_writes_nothing(login, admin_user, overrides, field):
    before = pipeline_rows()
    response = login(admin_user).post(reverse("settings_stage_create"), stage_post(**overrides))
    assert response.status_code == 422
    assert field in response.context["form"].errors
    assert pipeline_rows() == before


def test_it_allows_an_sla_of_zero_and_none(login, admin_user):
    client = login(admin_user)
    proposal = stage("proposal")
    fields = {"label_zh": proposal.label_zh, "label_en": proposal.label_en, "probability": "40"}
    assert (
        client.post(
            reverse("settings_stage_edit", args=[proposal.pk]), {**fields, "sla_days": "0"}
        ).status_code
        == 302
    )
    assert stage("proposal").sla_days == 0
    client.post(reverse("settings_stage_edit", args=[proposal.pk]), {**fields, "sla_days": ""})
    assert stage("proposal").sla_days is None


def test_the_stage_service_checks_the_probability_itself(admin_user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.stage_create(
            pipeline=services.default_pipeline(),
            label_zh="新",
            label_en="New one",
            probability=101,
            sla_days=None,
        )
    assert "probability" in refused.value.message_dict
    with pytest.raises(ValidationError):
        services.stage_update(
            stage=stage("lost"),
            label_zh="输单",
            label_en="Closed lost",
            probability=5,
            sla_days=None,
        )


def test_it_removes_only_a_stage_no_deal_was_ever_in(login, admin_user, rep):
    client = login(admin_user)
    make_deal(owner=rep, stage_key="qualification")
    moved = make_deal(owner=rep, stage_key="qualification")
    services.deal_move(deal=moved, stage=stage("needs_analysis"), at=T0 + days(1))
    services.deal_move(deal=moved, stage=stage("proposal"), at=T0 + days(2))
    before = pipeline_rows()

    # In it now: refused with the count.
    response = client.post(
        reverse("settings_stage_delete", args=[stage("qualification").pk]), follow=True
    )
    assert pipeline_rows() == before
    assert "2" in response.content.decode()
    # Only in a deal's history: refused too.
    client.post(reverse("settings_stage_delete", args=[stage("needs_analysis").pk]))
    assert pipeline_rows() == before
    # Won and lost stay.
    client.post(reverse("settings_stage_delete", args=[stage("won").pk]))
    assert pipeline_rows() == before

    client.post(reverse("settings_stage_create"), stage_post())
    empty = Stage.objects.get(label_en="Site visit")
    response = client.post(reverse("settings_stage_delete", args=[empty.pk]))
    assert response.status_code == 302
    assert not Stage.objects.filter(pk=empty.pk).exists()


def test_it_reorders_a_new_stage_with_the_arrows(login, admin_user):
    client = login(admin_user)
    client.post(reverse("settings_stage_create"), stage_post())
    new = Stage.objects.get(label_en="Site visit")
    client.post(reverse("settings_stage_move", args=[new.pk]), {"direction": "up"})
    assert Stage.objects.get(pk=new.pk).order == stage("verbal").order - 1


# --- Who may do what ---------------------------------------------------------------------------


READABLE_BY_MANAGERS = [
    "/settings/",
    "/settings/stages/",
    "/settings/rules/",
    "/settings/assignment/",
]
ADMIN_ONLY_PAGES = [
    "/settings/stages/new/",
    "/settings/web-forms/",
    "/settings/web-forms/new/",
    "/settings/webhooks/",
    "/settings/webhooks/new/",
    "/settings/assignment/new/",
    "/settings/users/",
    "/settings/spend/",
    "/settings/sources/",
]


@pytest.mark.parametrize("url", READABLE_BY_MANAGERS)
def test_it_lets_a_manager_read_the_stages_and_rules_without_edit_controls(login, manager, url):
    AssignmentRule.objects.create(name="华东轮转", team=manager.team)
    response = login(manager).get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "/edit" not in page and "/switch/" not in page and "/new/" not in page
    assert 'action="/settings/' not in page
    assert "/settings/webhooks/" not in page  # nor links to what they may not open


@pytest.mark.parametrize("url", ADMIN_ONLY_PAGES)
def test_it_keeps_the_other_settings_pages_from_managers(login, manager, url):
    assert login(manager).get(url).status_code == 403


@pytest.mark.parametrize("url", READABLE_BY_MANAGERS + ADMIN_ONLY_PAGES)
def test_it_keeps_every_settings_page_from_reps(login, rep, url):
    assert login(rep).get(url).status_code == 403


def everything() -> dict:
    models = (Stage, Rule, AssignmentRule, WebForm, Webhook, Source, Industry)
    return {m.__name__: list(m.objects.order_by("pk").values()) for m in models}


@pytest.mark.parametrize("who", ["rep", "manager"])
def test_it_refuses_every_settings_write_from_managers_and_reps(request, login, who):
    user = request.getfixturevalue(who)
    team = user.team
    rule = AssignmentRule.objects.create(name="华东轮转", team=team)
    form = WebForm.objects.create(name="官网", slug="site", use_assignment_rules=True)
    hook = Webhook.objects.create(url="https://hooks.example.com/x", events=["lead.created"])
    workflow = Rule.objects.get(key=RuleKey.STAGE_SLA)
    proposal = stage("proposal")
    posts = [
        ("/settings/stages/new/", stage_post()),
        (f"/settings/stages/{proposal.pk}/", stage_post(label_en="Quote")),
        (f"/settings/stages/{proposal.pk}/move/", {"direction": "up"}),
        (f"/settings/stages/{proposal.pk}/delete/", {}),
        ("/settings/stages/", {}),
        ("/settings/rules/", {}),
        (f"/settings/rules/{workflow.pk}/", {"notify_owner": "on"}),
        (f"/settings/rules/{workflow.pk}/switch/", {"active": "0"}),
        ("/settings/rules/install/", {"key": "stage_sla"}),
        ("/settings/assignment/", {}),
        ("/settings/assignment/new/", {"name": "x", "team": team.pk, "sequence": "1"}),
        (f"/settings/assignment/{rule.pk}/", {"name": "y", "team": team.pk, "sequence": "1"}),
        (f"/settings/assignment/{rule.pk}/switch/", {"active": "0"}),
        (
            "/settings/web-forms/new/",
            {"name": "x", "use_assignment_rules": "on", "min_fill_seconds": "3"},
        ),
        (f"/settings/web-forms/{form.pk}/switch/", {"active": "0"}),
        ("/settings/webhooks/new/", {"url": "https://a.example.com/", "events": ["deal.won"]}),
        (
            f"/settings/webhooks/{hook.pk}/",
            {"url": "https://b.example.com/", "events": ["deal.won"]},
        ),
        (f"/settings/webhooks/{hook.pk}/switch/", {"active": "0"}),
        ("/settings/sources/", {"name": "抖音", "is_active": "on"}),
    ]
    client = login(user)
    before = everything()
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert everything() == before


def test_it_refuses_a_settings_form_without_its_csrf_token(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = everything()
    assert client.post("/settings/stages/new/", stage_post()).status_code == 403
    assert everything() == before
    page = client.get("/settings/stages/new/").content.decode()
    assert "csrfmiddlewaretoken" in page


# --- Workflow rules ----------------------------------------------------------------------------


def test_it_edits_a_workflow_rule_with_only_the_settings_it_reads(login, admin_user):
    rule = Rule.objects.get(key=RuleKey.NO_FOLLOW_UP)
    client = login(admin_user)
    page = client.get(reverse("settings_rule_edit", args=[rule.pk]))
    form = page.context["form"]
    assert set(form.fields) == {
        "is_active",
        "days",
        "escalate_after_days",
        "notify_owner",
        "notify_manager",
        "send_email",
        "set_flag",
    }
    response = client.post(
        reverse("settings_rule_edit", args=[rule.pk]),
        {
            "is_active": "on",
            "days": "5",
            "escalate_after_days": "3",
            "notify_owner": "on",
            "notify_manager": "on",
            "hours": "99",  # not this rule's: ignored
            "reassign": "on",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.days, rule.escalate_after_days, rule.notify_manager) == (5, 3, True)
    assert (rule.send_email, rule.set_flag, rule.hours, rule.reassign) == (
        False,
        False,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("key", "data", "field"),
    [
        (RuleKey.NO_FOLLOW_UP, {"days": "0", "notify_owner": "on"}, "days"),
        (RuleKey.NO_FOLLOW_UP, {"days": "400", "notify_owner": "on"}, "days"),
        (RuleKey.NO_FOLLOW_UP, {"notify_manager": "on"}, "escalate_after_days"),
        (RuleKey.STAGE_SLA, {"send_email": "on"}, None),  # on, but does nothing
        (RuleKey.MANAGER_DIGEST, {"hours": "24"}, "hours"),
        (RuleKey.LEAD_NOT_CONTACTED, {"hours": "0", "notify_owner": "on"}, "hours"),
        (RuleKey.LEAD_NOT_CONTACTED, {"hours": "abc", "notify_owner": "on"}, "hours"),
    ],
)
def test_it_refuses_a_workflow_rule_that_cannot_work(login, admin_user, key, data, field):
    rule = Rule.objects.get(key=key)
    before = list(Rule.objects.order_by("pk").values())
    response = login(admin_user).post(
        reverse("settings_rule_edit", args=[rule.pk]), {"is_active": "on", **data}
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert (field or "__all__") in errors, errors
    assert list(Rule.objects.order_by("pk").values()) == before


def test_it_switches_a_workflow_rule_off_and_on_and_installs_a_missing_one(login, admin_user):
    client = login(admin_user)
    rule = Rule.objects.get(key=RuleKey.STAGE_SLA)
    client.post(reverse("settings_rule_toggle", args=[rule.pk]), {"active": "0"})
    assert not Rule.objects.get(pk=rule.pk).is_active
    # Switched off, a rule may keep no action at all (a browser posts no unticked box).
    response = client.post(reverse("settings_rule_edit", args=[rule.pk]), {"send_email": ""})
    assert response.status_code == 302
    client.post(reverse("settings_rule_toggle", args=[rule.pk]), {"active": "1"})
    assert Rule.objects.get(pk=rule.pk).is_active

    Rule.objects.filter(key=RuleKey.MANAGER_DIGEST).delete()
    page = client.get(reverse("settings_rules")).content.decode()
    assert "经理每日摘要" in page  # offered by its name
    client.post(reverse("settings_rule_install"), {"key": "manager_digest"})
    digest = Rule.objects.get(key=RuleKey.MANAGER_DIGEST)
    assert (digest.hours, digest.notify_manager) == (8, True)
    response = client.post(reverse("settings_rule_install"), {"key": "manager_digest"}, follow=True)
    assert Rule.objects.filter(key=RuleKey.MANAGER_DIGEST).count() == 1
    assert response.status_code == 200


# --- Assignment rules --------------------------------------------------------------------------


def test_it_creates_edits_and_switches_an_assignment_rule(login, admin_user, team, rep):
    source = Source.objects.create(name="官网表单")
    client = login(admin_user)
    response = client.post(
        reverse("settings_assignment_create"),
        {
            "name": "官网线索 → 华东",
            "team": team.pk,
            "sequence": "5",
            "source": source.pk,
            "region": " 华东 ",
            "daily_cap": "20",
            "gate_max_open_issues": "0",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    rule = AssignmentRule.objects.get()
    assert (rule.team, rule.source, rule.region, rule.daily_cap, rule.gate_max_open_issues) == (
        team,
        source,
        "华东",
        20,
        0,
    )
    client.post(
        reverse("settings_assignment_edit", args=[rule.pk]),
        {"name": "官网线索", "team": team.pk, "sequence": "7", "is_active": "on"},
    )
    rule.refresh_from_db()
    assert (rule.name, rule.sequence, rule.source, rule.daily_cap) == ("官网线索", 7, None, None)
    client.post(reverse("settings_assignment_toggle", args=[rule.pk]), {"active": "0"})
    rule.refresh_from_db()
    assert not rule.is_active


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "已有"}, "name"),
        ({"team": ""}, "team"),
        ({"sequence": "-1"}, "sequence"),
        ({"daily_cap": "0"}, "daily_cap"),
        ({"gate_max_open_issues": "-2"}, "gate_max_open_issues"),
    ],
)
def test_it_refuses_a_bad_assignment_rule(login, admin_user, team, overrides, field):
    AssignmentRule.objects.create(name="已有", team=team)
    before = list(AssignmentRule.objects.values())
    data = {"name": "新规则", "team": team.pk, "sequence": "10", "is_active": "on", **overrides}
    response = login(admin_user).post(reverse("settings_assignment_create"), data)
    assert response.status_code == 422
    assert field in response.context["form"].errors
    assert list(AssignmentRule.objects.values()) == before


def test_it_warns_when_a_rules_team_has_no_active_rep(login, admin_user):
    empty = TeamFactory(name="空组")
    response = login(admin_user).post(
        reverse("settings_assignment_create"),
        {"name": "空", "team": empty.pk, "sequence": "1", "is_active": "on"},
        follow=True,
    )
    page = response.content.decode()
    assert "空组" in page and ("no active reps" in page or "没有在职" in page)


# --- Web forms ---------------------------------------------------------------------------------


def test_it_creates_a_web_form_that_reaches_someone(login, admin_user, rep):
    client = login(admin_user)
    base = {"name": "Expo 2026", "fields": ["email", "phone"], "min_fill_seconds": "3"}
    nobody = client.post(reverse("settings_webform_create"), base)
    assert nobody.status_code == 422 and "owner" in nobody.context["form"].errors
    assert not WebForm.objects.exists()

    response = client.post(
        reverse("settings_webform_create"),
        {**base, "use_assignment_rules": "on", "is_active": "on"},
    )
    assert response.status_code == 302
    form = WebForm.objects.get()
    assert (form.slug, form.fields, form.use_assignment_rules) == (
        "expo-2026",
        ["email", "phone"],
        True,
    )
    page = client.get(reverse("settings_webform_edit", args=[form.pk])).content.decode()
    # The public address as the admin reached the server, not the development port.
    assert "http://testserver/api/forms/expo-2026/" in page
    assert ":8000" not in page
    # An owner with the rules on is the fallback when no rule assigns (api.webforms).
    both = client.post(
        reverse("settings_webform_create"),
        {**base, "name": "Expo B", "owner": rep.pk, "use_assignment_rules": "on"},
    )
    assert both.status_code == 302
    assert WebForm.objects.get(slug="expo-b").owner == rep


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"allowed_origins": "https://www.example.com/page"}, "allowed_origins"),
        ({"redirect_url": "not a url"}, "redirect_url"),
        ({"min_fill_seconds": "-1"}, "min_fill_seconds"),
        ({"fields": ["email", "shoe_size"]}, "fields"),
    ],
)
def test_it_refuses_a_bad_web_form(login, admin_user, overrides, field):
    data = {"name": "官网", "use_assignment_rules": "on", "min_fill_seconds": "3", **overrides}
    response = login(admin_user).post(reverse("settings_webform_create"), data)
    assert response.status_code == 422
    assert field in response.context["form"].errors
    assert not WebForm.objects.exists()


def test_a_switched_off_web_form_is_gone_from_the_public(login, admin_user, client):
    form = WebForm.objects.create(name="官网", slug="site", use_assignment_rules=True)
    login(admin_user).post(reverse("settings_webform_toggle", args=[form.pk]), {"active": "0"})
    client.logout()
    assert client.get("/api/forms/site/").status_code == 404


# --- Webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 spelt as one number
        "ftp://files.example.com/",
    ],
)
def test_it_refuses_a_webhook_to_a_private_target_as_the_api_does(login, admin_user, settings, url):
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = False
    response = login(admin_user).post(
        reverse("settings_webhook_create"), {"url": url, "events": ["deal.won"], "is_active": "on"}
    )
    assert response.status_code == 422
    errors = response.context["form"].errors["url"]
    assert webhook_url_error(url) in errors
    assert not Webhook.objects.exists()


def test_it_creates_a_webhook_and_shows_its_recent_deliveries(login, admin_user, settings):
    settings.LEAKMAP_WEBHOOK_ALLOW_PRIVATE = False
    client = login(admin_user)
    no_events = client.post(reverse("settings_webhook_create"), {"url": "https://93.184.216.34/h"})
    assert no_events.status_code == 422 and "events" in no_events.context["form"].errors
    response = client.post(
        reverse("settings_webhook_create"),
        {
            "url": "https://93.184.216.34/h",
            "events": ["deal.won", "lead.created"],
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    hook = Webhook.objects.get()
    assert hook.events == ["lead.created", "deal.won"] and len(hook.secret) == 64
    WebhookDelivery.objects.create(
        webhook=hook,
        event="deal.won",
        body="{}",
        status="delivered",
        attempts=1,
        last_status_code=200,
    )
    WebhookDelivery.objects.create(
        webhook=hook,
        event="lead.created",
        body="{}",
        status="failed",
        attempts=8,
        last_status_code=500,
        last_error="HTTP 500 Internal Server Error",
    )
    page = client.get(reverse("settings_webhook_edit", args=[hook.pk])).content.decode()
    assert hook.secret in page
    assert "HTTP 500" in page
    for status in ("Delivered", "Gave up"):
        assert status in page or {"Delivered": "已送达", "Gave up": "已放弃"}[status] in page

    old_secret = hook.secret
    client.post(
        reverse("settings_webhook_edit", args=[hook.pk]),
        {"url": "https://93.184.216.34/h", "events": ["deal.won"], "new_secret": "on"},
    )
    hook.refresh_from_db()
    assert hook.secret != old_secret and not hook.is_active and hook.events == ["deal.won"]
    # An edit to a private target is refused like a new one, and changes nothing.
    refused = client.post(
        reverse("settings_webhook_edit", args=[hook.pk]),
        {"url": "http://192.168.1.10/h", "events": ["deal.won"], "is_active": "on"},
    )
    assert refused.status_code == 422
    hook.refresh_from_db()
    assert hook.url == "https://93.184.216.34/h" and not hook.is_active


def test_it_switches_a_webhook_off(login, admin_user):
    hook = Webhook.objects.create(url="https://hooks.example.com/x", events=["lead.created"])
    login(admin_user).post(reverse("settings_webhook_toggle", args=[hook.pk]), {"active": "0"})
    hook.refresh_from_db()
    assert not hook.is_active


# --- Lookup lists ------------------------------------------------------------------------------


def test_it_renames_and_hides_a_lookup_entry_and_refuses_a_clash(login, admin_user):
    client = login(admin_user)
    client.post("/settings/industries/", {"name": "制造业", "is_active": "on"})
    client.post("/settings/industries/", {"name": "零售", "is_active": "on"})
    blank = client.post("/settings/industries/", {"name": "  ", "is_active": "on"})
    assert blank.status_code == 422 and "name" in blank.context["form"].errors
    item = Industry.objects.get(name="制造业")
    clash = client.post(f"/settings/industries/{item.pk}/", {"name": "零售", "is_active": "on"})
    assert clash.status_code == 422
    item.refresh_from_db()
    assert item.name == "制造业"
    client.post(f"/settings/industries/{item.pk}/", {"name": "高端制造"})
    item.refresh_from_db()
    assert (item.name, item.is_active) == ("高端制造", False)
    assert set(Industry.objects.values_list("name", flat=True)) >= {"高端制造", "零售"}


def test_a_manager_of_another_team_reads_the_same_rules(login, admin_user):
    other = UserFactory(username="m2", role="manager", team=TeamFactory(name="北方组"))
    AssignmentRule.objects.create(name="华北轮转", team=other.team)
    assert "华北轮转" in login(other).get("/settings/assignment/").content.decode()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_it_lets_an_admin_open_every_new_settings_page(login, admin_user, team, language):
    form = WebForm.objects.create(name="官网", slug="site", use_assignment_rules=True)
    hook = Webhook.objects.create(url="https://hooks.example.com/x", events=["lead.created"])
    rule = AssignmentRule.objects.create(name="华东轮转", team=team)
    client = login(admin_user)
    client.post(reverse("set_language"), {"language": language})
    urls = [
        "/settings/",
        "/settings/stages/new/",
        "/settings/rules/",
        "/settings/assignment/",
        "/settings/assignment/new/",
        f"/settings/assignment/{rule.pk}/",
        "/settings/web-forms/",
        "/settings/web-forms/new/",
        f"/settings/web-forms/{form.pk}/",
        "/settings/webhooks/",
        "/settings/webhooks/new/",
        f"/settings/webhooks/{hook.pk}/",
    ]
    urls += [f"/settings/rules/{pk}/" for pk in Rule.objects.values_list("pk", flat=True)]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        # No rule key, event code or field code as visible text.
        for code in ("no_follow_up", "stage_sla", "lead.created", "gate_max_open_issues"):
            assert f">{code}<" not in page, (url, code)


def test_it_keeps_at_least_one_lost_reason_active(login, admin_user):
    from leakmap.crm.models import LostReason

    client = login(admin_user)
    reasons = list(LostReason.objects.filter(is_active=True).order_by("pk"))
    *others, last = reasons
    for reason in others:
        client.post(f"/settings/lost-reasons/{reason.pk}/", {"name": reason.name})
    response = client.post(f"/settings/lost-reasons/{last.pk}/", {"name": last.name})
    assert response.status_code == 422
    assert "is_active" in response.context["form"].errors
    assert LostReason.objects.filter(is_active=True).get() == last


@pytest.mark.parametrize(
    "url", ["/settings/competitors/", "/settings/assignment/", "/settings/web-forms/"]
)
def test_it_heads_a_name_column_as_the_name_of_a_thing_not_a_person(login, admin_user, team, url):
    from leakmap.crm.models import Competitor

    Competitor.objects.create(name="销售易")
    AssignmentRule.objects.create(name="华东轮转", team=team)
    WebForm.objects.create(name="官网", slug="site", use_assignment_rules=True)
    page = login(admin_user).get(url).content.decode()
    assert "<th>名称</th>" in page
    assert "<th>姓名</th>" not in page  # a web form's fields may still ask a person's 姓名


def test_the_header_links_settings_for_whoever_may_open_them(login, admin_user, manager, rep):
    for user, shown in ((admin_user, True), (manager, True), (rep, False)):
        page = login(user).get("/").content.decode()
        assert ('href="/settings/"' in page) is shown, user.username
        if shown:
            assert login(user).get("/settings/").status_code == 200
