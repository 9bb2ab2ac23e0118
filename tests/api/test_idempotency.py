"""`Idempotency-Key` on API writes: a retry gets the first answer and writes nothing new."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from leakmap.api import idempotency
from leakmap.api.models import IdempotencyKey
from leakmap.api.tokens import token_create
from leakmap.crm.models import Activity, Deal, Lead
from tests.api.conftest import ApiClient
from tests.factories import make_deal

ROOT = Path(__file__).resolve().parents[2]
DB = settings.DATABASES["default"]


def keyed(client: ApiClient, key: str) -> ApiClient:
    """The same caller, sending `Idempotency-Key: key` with every request."""
    other = ApiClient(None)
    other.client = client.client
    other.headers = {**client.headers, "Idempotency-Key": key}
    return other


def test_it_answers_a_retried_post_with_the_first_answer_and_one_lead(as_rep, rep):
    first = keyed(as_rep, "lead-1").post("/leads", {"name": "陈静", "company": "青禾"})
    again = keyed(as_rep, "lead-1").post("/leads", {"name": "陈静", "company": "青禾"})

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Lead.objects.count() == 1
    assert Lead.objects.get().pk == first.json()["id"]


def test_it_refuses_the_same_key_with_another_body(as_rep):
    keyed(as_rep, "lead-1").post("/leads", {"name": "陈静"})

    response = keyed(as_rep, "lead-1").post("/leads", {"name": "王芳"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "Idempotency-Key"
    assert "POST /api/v1/leads" in response.json()["detail"][0]["message"]
    assert list(Lead.objects.values_list("name", flat=True)) == ["陈静"]


def test_it_refuses_the_same_key_on_another_path(as_rep, rep):
    deal = make_deal(owner=rep)
    keyed(as_rep, "k").post("/leads", {"name": "陈静"})

    response = keyed(as_rep, "k").patch(f"/deals/{deal.pk}", {"name": "陈静"})

    assert response.status_code == 422
    deal.refresh_from_db()
    assert deal.name == "Deal"


def test_it_keeps_keys_per_user(as_rep, as_teammate, rep, teammate):
    mine = keyed(as_rep, "shared-key").post("/leads", {"name": "陈静"})
    theirs = keyed(as_teammate, "shared-key").post("/leads", {"name": "陈静"})

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert sorted(Lead.objects.values_list("owner__username", flat=True)) == ["alice", "bob"]
    # Another body under the same text of key is no conflict for another user either.
    assert keyed(as_teammate, "k2").post("/leads", {"name": "x"}).status_code == 201
    assert keyed(as_rep, "k2").post("/leads", {"name": "y"}).status_code == 201


def test_it_changes_nothing_without_the_header(as_rep):
    first = as_rep.post("/leads", {"name": "陈静"})
    second = as_rep.post("/leads", {"name": "陈静"})

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert Lead.objects.count() == 2
    assert IdempotencyKey.objects.count() == 0


def test_it_replays_patch_and_delete(as_rep, rep):
    deal = make_deal(owner=rep, name="旧名")
    renamed = keyed(as_rep, "rename").patch(f"/deals/{deal.pk}", {"name": "新名"})
    deal.name = "别人又改了"
    deal.save(update_fields=["name"])

    replayed = keyed(as_rep, "rename").patch(f"/deals/{deal.pk}", {"name": "新名"})

    assert replayed.status_code == 200
    assert replayed.content == renamed.content
    deal.refresh_from_db()
    assert deal.name == "别人又改了"  # the retry wrote nothing

    gone = keyed(as_rep, "delete").delete(f"/deals/{deal.pk}")
    again = keyed(as_rep, "delete").delete(f"/deals/{deal.pk}")
    assert gone.status_code == again.status_code == 204
    assert again["Idempotent-Replayed"] == "true"
    assert as_rep.delete(f"/deals/{deal.pk}").status_code == 404
    assert not Deal.objects.filter(pk=deal.pk).exists()


def test_it_runs_a_retry_again_after_an_error_that_wrote_nothing(as_rep):
    refused = keyed(as_rep, "k").post("/leads", {"name": "陈静", "owner": "nobody"})
    assert refused.status_code == 422
    assert IdempotencyKey.objects.count() == 0

    # The client fixes its request and retries with the same key.
    fixed = keyed(as_rep, "k").post("/leads", {"name": "陈静"})
    assert fixed.status_code == 201
    assert Lead.objects.count() == 1


def test_it_refuses_a_malformed_key_with_a_clear_message(as_rep):
    for key in ("", "x" * 256, "key with\ttab"):
        response = keyed(as_rep, key).post("/leads", {"name": "陈静"})
        assert response.status_code == 422, key
        assert response.json()["detail"][0]["field"] == "Idempotency-Key"
    assert Lead.objects.count() == 0


def test_it_forgets_a_key_after_a_day(as_rep, rep, monkeypatch):
    first = keyed(as_rep, "k").post("/leads", {"name": "陈静"})
    IdempotencyKey.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))

    again = keyed(as_rep, "k").post("/leads", {"name": "陈静"})

    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert Lead.objects.count() == 2
    assert IdempotencyKey.objects.get().created_at > timezone.now() - dt.timedelta(minutes=1)


def test_it_purges_expired_keys_now_and_then(as_rep, teammate, monkeypatch):
    old = IdempotencyKey.objects.create(
        user=teammate,
        key="old",
        method="POST",
        path="/api/v1/leads",
        body_sha256="0" * 64,
        status_code=201,
        created_at=timezone.now() - dt.timedelta(hours=25),
    )
    monkeypatch.setattr(idempotency, "_last_purge", None)

    keyed(as_rep, "new").post("/leads", {"name": "陈静"})

    assert not IdempotencyKey.objects.filter(pk=old.pk).exists()
    assert IdempotencyKey.objects.filter(key="new").exists()


def test_it_leaves_refusals_to_the_api_for_read_only_tokens_and_strangers(rep):
    _token, clear = token_create(user=rep, name="看板", read_only=True)
    reader = ApiClient(clear)

    assert keyed(reader, "k").post("/leads", {"name": "陈静"}).status_code == 403
    assert keyed(ApiClient(None), "k").post("/leads", {"name": "陈静"}).status_code == 401
    assert Lead.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


def test_it_works_for_the_web_apps_session_with_csrf(rep, as_rep):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)
    client.get("/api/v1/docs")  # sets the CSRF cookie
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value, "Idempotency-Key": "s-1"}

    def post():
        return client.post(
            "/api/v1/leads", data={"name": "陈静"}, content_type="application/json", headers=headers
        )

    first, again = post(), post()
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    # Without the CSRF token the session is refused before any key is looked at.
    refused = client.post(
        "/api/v1/leads",
        data={"name": "陈静"},
        content_type="application/json",
        headers={"Idempotency-Key": "s-1"},
    )
    assert refused.status_code == 403
    assert Lead.objects.count() == 1
    # The same key by the same user through a token is the same key.
    assert keyed(as_rep, "s-1").post("/leads", {"name": "陈静"}).content == first.content


def test_it_keeps_reads_unchanged(as_rep, rep):
    make_deal(owner=rep)
    response = keyed(as_rep, "k").get("/deals")

    assert response.status_code == 200
    assert IdempotencyKey.objects.count() == 0
    assert Activity.objects.count() == 0


# --- Two requests with one key at the same time ---------------------------------------------
# They run in a process of their own against a scratch database, migrated by the real command:
# each request must commit (or wait) in its own connection, which the test database, kept in
# one transaction or in memory, cannot show.

RACE = textwrap.dedent(
    """
    import json, sys, threading, time
    import django
    django.setup()
    from django.db import connections
    from django.test import Client
    from leakmap.accounts.services import user_create
    from leakmap.api import idempotency
    from leakmap.api.tokens import token_create
    from leakmap.crm import services
    from leakmap.crm.models import Lead

    mode = sys.argv[1]
    user = user_create(username="alice", role="rep")
    _token, clear = token_create(user=user, name="race")
    headers = {"Authorization": f"Bearer {clear}", "Idempotency-Key": "race-1"}
    inside, release = threading.Event(), threading.Event()
    create = services.lead_create

    def slow_create(*args, **kwargs):
        # The first request holds its transaction open after writing, until released.
        lead = create(*args, **kwargs)
        if not inside.is_set():
            inside.set()
            release.wait(30)
        return lead

    services.lead_create = slow_create
    if mode == "busy":
        idempotency.WAIT_SECONDS = 0.5
    answers = {}

    def post(name):
        try:
            response = Client().post(
                "/api/v1/leads", data=json.dumps({"name": "陈静"}),
                content_type="application/json", headers=headers,
            )
            answers[name] = {
                "status": response.status_code,
                "body": response.content.decode(),
                "replayed": response.get("Idempotent-Replayed"),
                "at": time.monotonic(),
            }
        finally:
            connections.close_all()

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert inside.wait(30), "the first request never reached the write"
    second = threading.Thread(target=post, args=("second",))
    second.start()
    second.join(2.0)
    second_waited = second.is_alive()
    released_at = time.monotonic()
    release.set()
    first.join(30)
    second.join(30)
    post("retry")
    print(json.dumps({
        "answers": answers,
        "second_waited": second_waited,
        "second_before_release": answers["second"]["at"] < released_at,
        "leads": Lead.objects.count(),
    }))
    """
)


def scratch_database(tmp_path: Path):
    """A DATABASE_URL for an empty database of the same kind as the test database."""
    if DB["ENGINE"] != "django.db.backends.postgresql":
        return f"sqlite:///{tmp_path / 'race.sqlite3'}", None
    name = f"{(DB.get('TEST') or {}).get('NAME') or 'test_' + DB['NAME']}_idempotency"
    password = f" password={DB['PASSWORD']}" if DB["PASSWORD"] else ""
    admin = (
        f"host={DB['HOST'] or '127.0.0.1'} port={DB['PORT'] or 5432} user={DB['USER']}"
        f"{password} dbname=postgres"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    auth = DB["USER"] + (f":{DB['PASSWORD']}" if DB["PASSWORD"] else "")
    url = f"postgres://{auth}@{DB['HOST'] or '127.0.0.1'}:{DB['PORT'] or 5432}/{name}"

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


@pytest.fixture
def race_env(tmp_path):
    url, drop = scratch_database(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_CACHE": "locmem",
        "LEAKMAP_ALLOWED_HOSTS": "testserver",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_TEST_NAME", None)
    subprocess.run(
        [sys.executable, "-m", "leakmap", "migrate", "-v0"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=300,
    )
    yield env, tmp_path
    if drop:
        drop()


def race(race_env, mode: str) -> dict:
    env, cwd = race_env
    script = cwd / "race.py"
    script.write_text(RACE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), mode],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_it_makes_a_simultaneous_second_request_wait_and_replay(race_env):
    outcome = race(race_env, "wait")
    first, second, retry = (outcome["answers"][k] for k in ("first", "second", "retry"))

    assert outcome["second_waited"], "the second request did not wait for the first"
    assert first["status"] == second["status"] == retry["status"] == 201
    assert second["body"] == first["body"] == retry["body"]
    assert (first["replayed"], second["replayed"]) == (None, "true")
    assert outcome["leads"] == 1


@pytest.mark.skipif(
    DB["ENGINE"] != "django.db.backends.postgresql",
    reason="SQLite queues every writer on its one write lock (busy timeout) instead",
)
def test_it_answers_409_while_the_first_request_with_the_key_runs(race_env):
    outcome = race(race_env, "busy")
    first, second, retry = (outcome["answers"][k] for k in ("first", "second", "retry"))

    assert second["status"] == 409
    assert outcome["second_before_release"]
    assert json.loads(second["body"])["detail"][0]["field"] == "Idempotency-Key"
    assert first["status"] == retry["status"] == 201
    assert retry["body"] == first["body"] and retry["replayed"] == "true"
    assert outcome["leads"] == 1
