from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client

from leakmap.api.models import ApiToken
from leakmap.api.tokens import token_create, token_lookup

pytestmark = pytest.mark.usefixtures("base_template")


def _logged_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf(client: Client) -> str:
    page = client.get("/api/tokens/")
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]


def test_it_creates_a_token_shown_once_and_stored_hashed(rep):
    client = _logged_in(rep)
    response = client.post(
        "/api/tokens/", {"name": "营销同步", "csrfmiddlewaretoken": _csrf(client)}
    )
    assert response.status_code == 200
    clear = re.search(r'<code id="new-token">([^<]+)</code>', response.content.decode())[1]
    token = ApiToken.objects.get(user=rep)
    assert token.name == "营销同步"
    assert clear.startswith(f"lmk_{token.prefix}_")
    assert token.digest == hashlib.sha256(clear.encode()).hexdigest()
    assert clear not in str(ApiToken.objects.values_list().get())

    # It works as a bearer token, and the list never shows it again.
    api = Client().get("/api/v1/leads", headers={"Authorization": f"Bearer {clear}"})
    assert api.status_code == 200
    listing = client.get("/api/tokens/").content.decode()
    assert "营销同步" in listing
    assert clear not in listing
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_it_refuses_a_token_post_without_csrf(rep):
    client = _logged_in(rep)
    assert client.post("/api/tokens/", {"name": "x"}).status_code == 403
    assert ApiToken.objects.count() == 0


def test_it_asks_for_a_name(rep):
    client = _logged_in(rep)
    response = client.post("/api/tokens/", {"name": " ", "csrfmiddlewaretoken": _csrf(client)})
    assert response.status_code == 400
    assert ApiToken.objects.count() == 0


def test_it_revokes_a_token_so_it_no_longer_authenticates(rep):
    token, clear = token_create(user=rep, name="ci")
    assert token_lookup(clear).user == rep
    client = _logged_in(rep)
    response = client.post(
        f"/api/tokens/{token.pk}/revoke/", {"csrfmiddlewaretoken": _csrf(client)}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_lookup(clear) is None
    api = Client().get("/api/v1/leads", headers={"Authorization": f"Bearer {clear}"})
    assert api.status_code == 401


def test_it_lets_nobody_revoke_or_see_another_users_token(rep, outsider, admin_user):
    # A name that cannot turn up in the page by chance ("ci" once matched a random CSRF token).
    token, clear = token_create(user=rep, name="alice-private-token")
    for other in (outsider, admin_user):
        client = _logged_in(other)
        page = client.get("/api/tokens/").content.decode()
        assert "alice-private-token" not in page
        assert f"/api/tokens/{token.pk}/revoke/" not in page
        response = client.post(
            f"/api/tokens/{token.pk}/revoke/", {"csrfmiddlewaretoken": _csrf(client)}
        )
        assert response.status_code == 404
    assert token_lookup(clear).user == rep


def test_it_only_revokes_with_post(rep):
    token, _clear = token_create(user=rep, name="ci")
    assert _logged_in(rep).get(f"/api/tokens/{token.pk}/revoke/").status_code == 405


def test_it_sends_anonymous_visitors_to_the_login(db):
    response = Client().get("/api/tokens/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_refuses_tokens_of_inactive_users_and_lookalikes(rep):
    _token, clear = token_create(user=rep, name="ci")
    assert token_lookup(clear[:-1] + ("A" if clear[-1] != "A" else "B")) is None
    assert token_lookup("lmk_short_x") is None
    assert token_lookup("") is None
    rep.is_active = False
    rep.save()
    assert token_lookup(clear) is None


def test_a_read_only_token_reads_but_cannot_change_anything(rep):
    from leakmap.crm.models import Lead

    client = _logged_in(rep)
    response = client.post(
        "/api/tokens/",
        {"name": "看板", "access": "read", "csrfmiddlewaretoken": _csrf(client)},
    )
    clear = re.search(r'<code id="new-token">([^<]+)</code>', response.content.decode())[1]
    assert ApiToken.objects.get(name="看板").read_only
    assert "只读" in client.get("/api/tokens/").content.decode()  # the list says which
    bearer = {"Authorization": f"Bearer {clear}"}
    assert Client().get("/api/v1/leads", headers=bearer).status_code == 200
    assert Client().get("/api/v1/reports/funnel", headers=bearer).status_code == 200
    refused = Client().post(
        "/api/v1/leads",
        {"name": "不该写入", "source": "官网"},
        content_type="application/json",
        headers=bearer,
    )
    assert refused.status_code == 403
    assert "只读" in refused.json()["detail"][0]["message"]
    assert not Lead.objects.filter(name="不该写入").exists()


def test_a_token_reads_and_writes_unless_made_read_only(rep):
    from leakmap.crm.models import Lead

    _token, clear = token_create(user=rep, name="同步")
    created = Client().post(
        "/api/v1/leads",
        {"name": "可以写入"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {clear}"},
    )
    assert created.status_code == 201, created.content
    assert Lead.objects.filter(name="可以写入", owner=rep).exists()
