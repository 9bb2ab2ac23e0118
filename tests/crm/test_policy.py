"""Who may change what (crm.policy), through every write door there is.

The matrix below is generated: every write operation of the OpenAPI document and every route
of the URL conf (POSTed to), for each kind of actor, so a route added later is covered
without editing this file. A route the classification cannot place fails the test, which
asks for it to be classified. Every refusal must leave the database exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from leakmap.accounts.models import Role, SavedView
from leakmap.api.api import api
from leakmap.api.models import WebForm, Webhook
from leakmap.api.tokens import token_create
from leakmap.automation.models import AssignmentRule, Notification, Rule
from leakmap.crm import selectors, services
from leakmap.crm.models import Account, Activity, Contact, Deal, Lead, Source, Stage, StageChange
from tests.factories import LeadFactory, TeamFactory, UserFactory, make_deal

ACTORS = ("owner", "teammate", "outsider", "manager", "other_manager", "admin", "anonymous")
API_ACTORS = (*ACTORS, "read_only")
# Who may change the owner's records: the owner, the manager of the owner's team, an admin.
MAY_CHANGE = {"owner", "manager", "admin"}


@dataclass
class World:
    users: dict
    lead: Lead
    deal: Deal
    account: Account
    contact: Contact
    activity: Activity
    token: object
    notification: Notification
    webform: WebForm
    saved_view: SavedView
    webhook: Webhook
    assignment_rule: AssignmentRule

    def record(self, kind: str):
        return getattr(self, kind)


@pytest.fixture
def world(db) -> World:
    # No passwords (force_login and tokens need none): hashing six would cost seconds a case.
    team_a, team_b = TeamFactory(name="A组"), TeamFactory(name="B组")
    manager = UserFactory(username="m_a", role=Role.MANAGER, team=team_a, password=None)
    other_manager = UserFactory(username="m_b", role=Role.MANAGER, team=team_b, password=None)
    owner = UserFactory(username="alice", team=team_a, manager=manager, password=None)
    teammate = UserFactory(username="bob", team=team_a, manager=manager, password=None)
    outsider = UserFactory(username="mallory", team=team_b, manager=other_manager, password=None)
    admin = UserFactory(username="root", role=Role.ADMIN, team=None, is_staff=True, password=None)
    users = {
        "owner": owner,
        "teammate": teammate,
        "outsider": outsider,
        "manager": manager,
        "other_manager": other_manager,
        "admin": admin,
    }
    account = services.account_create(name="华为", owner=owner)
    contact = services.contact_create(name="王经理", account=account, owner=owner)
    lead = LeadFactory(owner=owner)
    deal = make_deal(owner=owner, account=account, contact=contact, stage_key="qualification")
    activity = services.activity_log(
        services.ActivityInput(owner=owner, kind="task", deal=deal, subject="回访")
    )
    # Seeing is not owning: the teammate and the outsider each have a deal on the owner's
    # account and contact, so they see both, and may change neither.
    make_deal(owner=teammate, account=account, contact=contact)
    make_deal(owner=outsider, account=account, contact=contact)
    token, _clear = token_create(user=owner, name="integration")
    notification = Notification.objects.create(
        recipient=owner, kind="stuck", title="停滞", created_at=timezone.now()
    )
    webform = WebForm.objects.create(name="官网", slug="site", min_fill_seconds=0)
    saved_view = SavedView.objects.create(
        owner=owner, kind="lead", name="新线索", query="status=new"
    )
    webhook = Webhook.objects.create(url="https://hooks.example.com/in", events=["deal.won"])
    assignment_rule = AssignmentRule.objects.create(name="A组轮转", team=team_a)
    return World(
        users,
        lead,
        deal,
        account,
        contact,
        activity,
        token,
        notification,
        webform,
        saved_view,
        webhook,
        assignment_rule,
    )


def snapshot() -> dict:
    """Every row a write could touch, as stored."""
    models = (Lead, Deal, Account, Contact, Activity, StageChange, Notification, WebForm)
    models += (SavedView, Webhook, AssignmentRule, Rule, Stage, Source)
    rows = {m.__name__: list(m.objects.order_by("pk").values()) for m in models}
    from leakmap.api.models import ApiToken

    # A token's last use is bookkeeping of the request itself, not a write it was refused.
    rows["ApiToken"] = list(ApiToken.objects.order_by("pk").values("pk", "user", "revoked_at"))
    return rows


def can_see(world: World, actor: str, kind: str) -> bool:
    user = world.users.get(actor)
    if user is None:
        return False
    visible = {
        "lead": selectors.visible_leads,
        "deal": selectors.visible_deals,
        "account": selectors.visible_accounts,
        "contact": selectors.visible_contacts,
        "activity": selectors.visible_activities,
    }[kind](user)
    return visible.filter(pk=world.record(kind).pk).exists()


# --- The API: every write operation of the OpenAPI document ------------------------------------

WRITE_METHODS = ("post", "put", "patch", "delete")


def api_operations() -> list[tuple[str, str, dict]]:
    schema = api.get_openapi_schema()
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in WRITE_METHODS
    ]


def _component(ref: str) -> dict:
    return api.get_openapi_schema()["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _value_for(name: str, prop: dict, world: World):
    """A valid value for one body field: the few whose meaning matters, then by type."""
    meaning = {
        "stage": "needs_analysis",
        "lost_reason": "价格过高",
        "deal_id": world.deal.pk,
        "reason": "不是目标客户",
        "amount": "2000.00",
        "name": "改名",
    }
    if name in meaning:
        return meaning[name]
    options = prop.get("anyOf", [prop])
    prop = next((o for o in options if o.get("type") != "null"), options[0])
    if "enum" in prop:
        return prop["enum"][0]
    if prop.get("format") == "date-time":
        return timezone.now().isoformat()
    if prop.get("format") == "date":
        return (timezone.localdate() + dt.timedelta(days=30)).isoformat()
    return {"integer": 1, "number": "1.00", "boolean": True}.get(prop.get("type"), "x")


def request_body(op: dict, world: World) -> dict | None:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = _component(content["schema"]["$ref"])
    props = schema.get("properties", {})
    # The required fields, and a name where there is one, so that an allowed write changes
    # something; an activity names the owner's deal (it must belong to a deal or a lead).
    wanted = set(schema.get("required", ())) | ({"name"} & set(props)) | ({"deal_id"} & set(props))
    return {name: _value_for(name, props[name], world) for name in sorted(wanted)}


def may_write(method: str, kind: str) -> set[str]:
    """Who may make this write. The owner's account and contact are also named by the
    teammate's and the outsider's deals, so only an admin may delete them."""
    if method == "DELETE" and kind in ("account", "contact"):
        return {"admin"}
    return MAY_CHANGE


PATH_RECORD = re.compile(r"\{(lead|deal|account|contact|activity)_id\}")


def api_case_ids():
    return [f"{m} {p}" for m, p, _ in api_operations()]


@pytest.mark.parametrize("actor", API_ACTORS)
@pytest.mark.parametrize(("method", "path", "op"), api_operations(), ids=api_case_ids())
def test_it_lets_only_those_who_may_change_a_record_write_it_through_the_api(
    world, actor, method, path, op
):
    target = PATH_RECORD.search(path)
    kind = target.group(1) if target else None
    url = PATH_RECORD.sub(str(world.record(kind).pk), path) if kind else path
    body = request_body(op, world)
    references_owners_deal = body is not None and "deal_id" in body

    headers = {}
    if actor == "read_only":
        _row, clear = token_create(user=world.users["owner"], name="ro", read_only=True)
        headers["Authorization"] = f"Bearer {clear}"
    elif actor != "anonymous":
        _row, clear = token_create(user=world.users[actor], name="rw")
        headers["Authorization"] = f"Bearer {clear}"
    before = snapshot()
    kwargs = {"headers": headers}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    response = getattr(Client(), method.lower())(url, **kwargs)

    if actor == "anonymous":
        expected = {401}
    elif actor == "read_only":
        expected = {403}
    elif kind is not None and actor not in may_write(method, kind):
        # Seen but not theirs: 403 with the owner's name; unseen: 404, as if it did not exist.
        expected = {403} if can_see(world, actor, kind) else {404}
    elif kind is None and references_owners_deal and actor not in MAY_CHANGE:
        expected = {422}  # "No deal with id …": the reference is resolved like a lookup
    else:
        assert 200 <= response.status_code < 300, (actor, url, body, response.content)
        return
    assert response.status_code in expected, (actor, url, response.status_code, response.content)
    assert snapshot() == before, f"{actor} was refused {method} {url} but something was written"
    if response.status_code == 403 and actor in ("teammate", "outsider"):
        message = response.json()["detail"][0]["message"]
        assert world.users["owner"].display_name in message, message


# --- The web app: every route of the URL conf, POSTed to ---------------------------------------


def web_routes() -> list[tuple[str, str]]:
    """(name, pattern) of every route outside the Django admin and the API operations."""
    found = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found.append((p.name or "", prefix + str(p.pattern)))

    walk(get_resolver().url_patterns, "")
    return [
        (name, pattern) for name, pattern in found if not pattern.startswith(("admin/", "api/v1/"))
    ]


# How each route is guarded, from its path. A new route under one of these prefixes is
# classified without touching this file; one under a new prefix fails until it is placed.
RECORD_PREFIXES = {"leads/<int:pk>/": "lead", "deals/<int:pk>/": "deal"}
SEEN_PREFIXES = {"accounts/<int:pk>/": "account", "contacts/<int:pk>/": "contact"}
OWN_PREFIXES = ("notifications/<int:", "api/tokens/<int:", "views/<int:")
PUBLIC = {"login", "logout", "set_language", "api-web-form"}
# Each signed-in user's own things: their tokens, their notifications, their saved views.
SELF = {
    "api-tokens",
    "notification_read_all",
    "lead_view_create",
    "deal_view_create",
    "account_view_create",
    "contact_view_create",
}
READ_PREFIXES = ("", "leads/", "deals/", "accounts/", "contacts/", "reports/", "notifications/")
# The task list and the week calendar are pages to read; tasks/<pk>/… write on an activity.
READ_PREFIXES += ("tasks/",)
RECORD_PREFIXES["tasks/<int:pk>/"] = "activity"


def classify(name: str, pattern: str) -> tuple[str, str | None]:
    if name in PUBLIC:
        return "public", None
    if name in SELF:
        return "self", None
    if pattern.startswith("settings/"):
        return "admin", None
    if pattern.endswith("/new/"):
        return "self", None  # a new record of one's own
    for prefix, kind in RECORD_PREFIXES.items():
        if pattern.startswith(prefix):
            return "record", kind
    for prefix, kind in SEEN_PREFIXES.items():
        if pattern.startswith(prefix):
            return "seen", kind
    if pattern.startswith(OWN_PREFIXES):
        return "own", None
    if "<" not in pattern and pattern.startswith(READ_PREFIXES):
        return "signed_in", None
    if pattern.startswith(("leads/export.", "deals/export.", "reports/")):
        return "signed_in", None
    raise AssertionError(f"Route {name!r} ({pattern}) is not classified in test_policy.py")


def web_url(pattern: str, world: World) -> str:
    owner = world.users["owner"]
    values = {
        "pk": None,
        "fmt": "csv",
        "name": "funnel",
        "slug": world.webform.slug,
        "kind": "sources",
        "notification_id": world.notification.pk,
        "token_id": world.token.pk,
        "field": "owner",
    }
    if pattern.startswith(("leads/", "deals/", "accounts/", "contacts/")):
        kind = pattern.split("/", 1)[0][:-1]
        values["pk"] = world.record(kind).pk
    elif pattern.startswith("views/"):
        values["pk"] = world.saved_view.pk
    elif pattern.startswith("tasks/"):
        values["pk"] = world.activity.pk
    elif pattern.startswith("settings/users/"):
        values["pk"] = owner.pk
    elif pattern.startswith("settings/stages/"):
        values["pk"] = world.deal.stage_id
    elif pattern.startswith("settings/rules/"):
        values["pk"] = Rule.objects.order_by("pk").values_list("pk", flat=True).first()
    elif pattern.startswith("settings/assignment/"):
        values["pk"] = world.assignment_rule.pk
    elif pattern.startswith("settings/web-forms/"):
        values["pk"] = world.webform.pk
    elif pattern.startswith("settings/webhooks/"):
        values["pk"] = world.webhook.pk
    elif pattern.startswith("settings/"):
        values["pk"] = world.lead.source_id

    def fill(match):
        return str(values[match.group(2)])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, pattern)


def web_case(name: str, pattern: str) -> str:
    return name or pattern


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize(("name", "pattern"), web_routes(), ids=lambda v: v)
def test_it_lets_only_those_who_may_change_a_record_write_it_through_the_web(
    world, actor, name, pattern
):
    rule, kind = classify(name, pattern)
    url = web_url(pattern, world)
    client = Client()
    if actor != "anonymous":
        client.force_login(world.users[actor])
    before = snapshot()
    # A form that would change something if it were let through.
    response = client.post(url, {"name": "改名", "stage": world.deal.stage_id, "subject": "x"})
    status = response.status_code
    assert status < 500, (actor, url, status)
    to_login = status == 302 and "/login/" in response.get("Location", "")

    if rule == "public":
        return
    if actor == "anonymous":
        assert to_login or status in (401, 403, 405), (url, status)
        assert snapshot() == before, f"anonymous POST {url} wrote something"
        return
    if rule == "admin":
        allowed = actor == "admin"
    elif rule == "record":
        allowed = actor in MAY_CHANGE
    elif rule == "seen":
        allowed = can_see(world, actor, kind)
    elif rule == "own":
        allowed = actor == "owner"
    else:
        allowed = True
    if allowed:
        assert status not in (403, 404) and not to_login, (actor, url, status)
        if rule in ("seen", "signed_in"):  # pages to read: a POST there writes nothing
            assert snapshot() == before, f"{actor} POST {url} wrote something"
        return
    assert status in (403, 404, 405), (actor, url, status)
    assert snapshot() == before, f"{actor} was refused POST {url} but something was written"


def test_every_route_is_classified():
    routes = web_routes()
    assert len(routes) > 30
    for name, pattern in routes:
        classify(name, pattern)


def test_the_api_matrix_covers_every_write_operation():
    """The OpenAPI document is where the matrix finds the API's routes: make sure it does."""
    ops = {(method, path) for method, path, _ in api_operations()}
    for kind, key in (
        ("leads", "lead"),
        ("deals", "deal"),
        ("accounts", "account"),
        ("contacts", "contact"),
        ("activities", "activity"),
    ):
        assert ("POST", f"/api/v1/{kind}") in ops
        assert ("PATCH", f"/api/v1/{kind}/{{{key}_id}}") in ops
        assert ("DELETE", f"/api/v1/{kind}/{{{key}_id}}") in ops


# --- The findings of the attack, one by one ----------------------------------------------------


def _api(user, **token_kwargs):
    _row, clear = token_create(user=user, name="t", **token_kwargs)
    return {"headers": {"Authorization": f"Bearer {clear}"}}


def test_it_refuses_a_rep_who_sees_an_account_through_a_deal_taking_it_over(world):
    outsider = world.users["outsider"]
    url = f"/api/v1/accounts/{world.account.pk}"
    auth = _api(outsider)
    before = snapshot()
    response = Client().patch(
        url,
        data=json.dumps({"owner": outsider.username, "name": "Mine now"}),
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 403
    assert "Alice" in response.json()["detail"][0]["message"]
    assert Client().delete(url, **auth).status_code == 403
    assert snapshot() == before
    world.account.refresh_from_db()
    assert world.account.owner == world.users["owner"] and world.account.name == "华为"


def test_it_refuses_deleting_an_account_that_other_peoples_deals_use(world):
    """Even its owner: the other reps' deals would lose their account."""
    response = Client().delete(f"/api/v1/accounts/{world.account.pk}", **_api(world.users["owner"]))
    assert response.status_code == 403
    assert "2" in response.json()["detail"][0]["message"]
    assert Account.objects.filter(pk=world.account.pk).exists()
    # An admin may: every deal is theirs to change.
    response = Client().delete(f"/api/v1/accounts/{world.account.pk}", **_api(world.users["admin"]))
    assert response.status_code == 204


def test_it_lets_an_owner_hand_a_record_to_a_teammate_but_not_to_a_stranger(world):
    owner, teammate, outsider = (world.users[k] for k in ("owner", "teammate", "outsider"))
    url = f"/api/v1/leads/{world.lead.pk}"
    response = Client().patch(
        url,
        data=json.dumps({"owner": outsider.username}),
        content_type="application/json",
        **_api(owner),
    )
    assert response.status_code == 422
    world.lead.refresh_from_db()
    assert world.lead.owner == owner
    response = Client().patch(
        url,
        data=json.dumps({"owner": teammate.username}),
        content_type="application/json",
        **_api(owner),
    )
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == teammate.username
    world.lead.refresh_from_db()
    assert world.lead.owner == teammate


def test_it_lets_the_owners_manager_re_own_and_not_another_manager(world):
    manager, other = world.users["manager"], world.users["other_manager"]
    url = f"/api/v1/deals/{world.deal.pk}"
    body = json.dumps({"owner": world.users["teammate"].username})
    response = Client().patch(url, data=body, content_type="application/json", **_api(other))
    assert response.status_code == 404
    response = Client().patch(url, data=body, content_type="application/json", **_api(manager))
    assert response.status_code == 200
    world.deal.refresh_from_db()
    assert world.deal.owner == world.users["teammate"]
    assert world.deal.amount == Decimal("1000")


def test_it_shows_a_refused_web_write_as_403_with_nothing_written(world):
    client = Client()
    client.force_login(world.users["teammate"])
    before = snapshot()
    response = client.post(f"/deals/{world.deal.pk}/edit/", {"name": "x"})
    assert response.status_code == 404  # the teammate does not even see the deal
    assert snapshot() == before
