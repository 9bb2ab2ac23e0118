"""Guessing passwords and API tokens: the sign-in form, the admin's, and bearer tokens back off
per username and per client address, through real requests and the real database."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from leakmap.accounts.models import TokenFailure
from leakmap.api.tokens import token_create

REPO = Path(__file__).resolve().parents[2]
RIGHT = "pass-word-123"  # tests.factories.UserFactory's password
LIMIT = 5  # LEAKMAP_LOGIN_FAILURE_LIMIT's default
COOLOFF = dt.timedelta(minutes=15)  # LEAKMAP_LOGIN_COOLOFF_MINUTES's default


def sign_in(username: str, password: str, *, ip: str = "203.0.113.10", lang: str = "en"):
    client = Client(REMOTE_ADDR=ip, HTTP_ACCEPT_LANGUAGE=lang)
    response = client.post("/login/", {"username": username, "password": password})
    return response, client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(username: str, times: int, **kw) -> list[int]:
    return [sign_in(username, "wrong-guess", **kw)[0].status_code for _ in range(times)]


def let_cooloff_pass(by: dt.timedelta = COOLOFF + dt.timedelta(seconds=1)) -> None:
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - by)
    for row in TokenFailure.objects.all():
        TokenFailure.objects.filter(pk=row.pk).update(last_failure_at=row.last_failure_at - by)


# --- The sign-in form ---------------------------------------------------------------------------


def test_it_locks_a_username_after_the_limit_and_refuses_even_the_right_password(rep):
    # Four wrong passwords are told so; the fifth is told that sign-in is now paused.
    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)
    assert fail("alice", 1) == [429]

    sixth, _ = sign_in("alice", "wrong-guess")
    assert sixth.status_code == 429
    right, client = sign_in("alice", RIGHT)
    assert right.status_code == 429
    assert not signed_in(client)
    assert 880 <= int(right["Retry-After"]) <= 900
    page = right.content.decode()
    assert "Too many failed sign-ins" in page and "about 15 minutes" in page
    assert 'name="username"' in page and 'value="alice"' in page  # the form is still there
    # Refused attempts are not counted: the lockout ends when the page said.
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == LIMIT


def test_it_tells_a_locked_user_in_chinese_by_default(rep):
    fail("alice", LIMIT)
    right, _ = sign_in("alice", RIGHT, lang="zh-CN")
    assert right.status_code == 429
    page = right.content.decode()
    assert "登录失败次数过多" in page and "约 15 分钟" in page


def test_it_lets_the_user_in_again_once_the_cooloff_has_passed(rep):
    fail("alice", LIMIT)
    let_cooloff_pass(COOLOFF - dt.timedelta(seconds=30))
    assert sign_in("alice", RIGHT)[0].status_code == 429
    let_cooloff_pass(dt.timedelta(seconds=31))
    response, client = sign_in("alice", RIGHT)
    assert response.status_code == 302 and signed_in(client)


def test_it_locks_an_address_that_tries_many_usernames(rep, teammate):
    for name in ("bob", "carol", "dave", "erin", "frank"):
        sign_in(name, "wrong-guess", ip="198.51.100.7")
    response, client = sign_in("alice", RIGHT, ip="198.51.100.7")
    assert response.status_code == 429 and not signed_in(client)
    # alice herself is not locked: from her own address she gets in.
    response, client = sign_in("alice", RIGHT, ip="203.0.113.10")
    assert response.status_code == 302 and signed_in(client)


def test_it_locks_a_username_guessed_from_many_addresses(rep):
    for i in range(LIMIT):
        sign_in("alice", "wrong-guess", ip=f"192.0.2.{i + 1}")
    response, client = sign_in("alice", RIGHT, ip="192.0.2.200")
    assert response.status_code == 429 and not signed_in(client)


def test_it_forgets_a_users_own_typos_once_they_sign_in(rep):
    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)
    assert sign_in("alice", RIGHT)[0].status_code == 302
    assert fail("alice", LIMIT - 1) == [200] * (LIMIT - 1)


def test_signing_in_to_ones_own_account_does_not_reset_an_address(rep, teammate):
    ip = "198.51.100.9"
    fail("alice", LIMIT - 1, ip=ip)
    assert sign_in("bob", RIGHT, ip=ip)[0].status_code == 302
    assert fail("alice", 1, ip=ip) == [429]


def test_it_locks_the_django_admin_login_too(admin_user):
    client = Client(REMOTE_ADDR="203.0.113.44")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "admin", "password": "wrong-guess"})
    response = client.post("/admin/login/", {"username": "admin", "password": RIGHT})
    assert response.status_code == 429
    assert not signed_in(client)


@pytest.mark.parametrize("limit, cooloff", [(2, 1)])
def test_it_reads_limit_and_cooloff_from_settings(rep, settings, limit, cooloff):
    settings.LEAKMAP_LOGIN_FAILURE_LIMIT = limit
    settings.LEAKMAP_LOGIN_COOLOFF_MINUTES = cooloff
    assert fail("alice", 2) == [200, 429]
    response = sign_in("alice", RIGHT)[0]
    assert response.status_code == 429 and int(response["Retry-After"]) <= 60


# --- Unlocking ----------------------------------------------------------------------------------


def test_the_unlock_command_lets_the_user_in_at_once(rep, capsys):
    fail("alice", LIMIT)
    assert sign_in("alice", RIGHT)[0].status_code == 429
    call_command("user", "unlock", "alice")
    assert "unlocked alice" in capsys.readouterr().out
    response, client = sign_in("alice", RIGHT)
    assert response.status_code == 302 and signed_in(client)


def test_the_unlock_command_frees_an_address(rep):
    for name in ("x1", "x2", "x3", "x4", "x5"):
        sign_in(name, "wrong-guess", ip="198.51.100.8")
    assert sign_in("alice", RIGHT, ip="198.51.100.8")[0].status_code == 429
    call_command("user", "unlock", "--address", "198.51.100.8")
    assert sign_in("alice", RIGHT, ip="198.51.100.8")[0].status_code == 302


def test_the_unlock_command_names_bad_input(db):
    for args, message in [
        (["nobody"], "no user named 'nobody'"),
        (["--address", "not-an-ip"], "--address: 'not-an-ip' is not an IPv4 or IPv6 address"),
        ([], "name a USERNAME, an --address, or both"),
    ]:
        with pytest.raises(CommandError) as exc:
            call_command("user", "unlock", *args)
        assert exc.value.returncode == 2
        assert message in str(exc.value)


def _csrf(client: Client, path: str) -> str:
    page = client.get(path)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]


def test_an_admin_unlocks_a_user_with_a_button(rep, admin_user):
    fail("alice", LIMIT)
    admin = Client(enforce_csrf_checks=True)
    admin.force_login(admin_user)
    page = admin.get("/settings/users/").content.decode()
    assert f'action="/settings/users/{rep.pk}/unlock/"' in page
    assert admin.post(f"/settings/users/{rep.pk}/unlock/").status_code == 403  # no CSRF token
    assert sign_in("alice", RIGHT)[0].status_code == 429

    token = _csrf(admin, "/settings/users/")
    response = admin.post(f"/settings/users/{rep.pk}/unlock/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert f"/settings/users/{rep.pk}/unlock/" not in admin.get("/settings/users/").content.decode()
    response, client = sign_in("alice", RIGHT)
    assert response.status_code == 302 and signed_in(client)


def test_an_admin_unlocks_an_address_with_a_button(rep, admin_user):
    for name in ("x1", "x2", "x3", "x4", "x5"):
        sign_in(name, "wrong-guess", ip="198.51.100.11")
    admin = Client()
    admin.force_login(admin_user)
    assert "198.51.100.11" in admin.get("/settings/users/").content.decode()
    admin.post("/settings/addresses/unlock/", {"address": "198.51.100.11"})
    assert sign_in("alice", RIGHT, ip="198.51.100.11")[0].status_code == 302


def test_only_admins_may_unlock(rep, teammate, manager):
    fail("alice", LIMIT)
    for user in (teammate, manager):
        client = Client()
        client.force_login(user)
        assert client.post(f"/settings/users/{rep.pk}/unlock/").status_code == 403
        assert client.get("/settings/users/").status_code == 403
    assert Client().post(f"/settings/users/{rep.pk}/unlock/").status_code == 302  # to login
    assert sign_in("alice", RIGHT)[0].status_code == 429


# --- API bearer tokens --------------------------------------------------------------------------


def api_get(token: str, ip: str = "203.0.113.20"):
    return Client(REMOTE_ADDR=ip).get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})


def test_it_answers_429_with_retry_after_to_an_address_guessing_tokens(rep):
    _token, clear = token_create(user=rep, name="sync")
    statuses = [api_get(f"lmk_abcd1234_guess{i}").status_code for i in range(LIMIT)]
    assert statuses == [401] * LIMIT
    refused = api_get("lmk_abcd1234_guess-more")
    assert refused.status_code == 429
    assert 880 <= int(refused["Retry-After"]) <= 900
    assert "错误 API 令牌过多" in refused.json()["detail"][0]["message"]  # zh-hans by default

    # The valid token too, from that address; from another it works.
    valid = api_get(clear)
    assert valid.status_code == 429 and valid["Retry-After"]
    assert api_get(clear, ip="203.0.113.21").status_code == 200
    assert TokenFailure.objects.get(address="203.0.113.20").failures == LIMIT


def test_a_token_lockout_ends_after_the_cooloff_or_an_unlock(rep):
    _token, clear = token_create(user=rep, name="sync")
    for i in range(LIMIT):
        api_get(f"lmk_abcd1234_guess{i}")
    assert api_get(clear).status_code == 429
    let_cooloff_pass()
    assert api_get(clear).status_code == 200

    for i in range(LIMIT):
        api_get(f"lmk_abcd1234_guess{i}")
    assert api_get(clear).status_code == 429
    call_command("user", "unlock", "--address", "203.0.113.20")
    assert api_get(clear).status_code == 200


def test_wrong_tokens_do_not_lock_the_sign_in_form(rep):
    for i in range(LIMIT):
        api_get(f"lmk_abcd1234_guess{i}", ip="203.0.113.30")
    response, client = sign_in("alice", RIGHT, ip="203.0.113.30")
    assert response.status_code == 302 and signed_in(client)


# --- Shared by every process ----------------------------------------------------------------------

SEED = """
import django; django.setup()
from leakmap.accounts.services import user_create
from leakmap.api.tokens import token_create
user = user_create(username="alice", role="rep", password="copper-kettle-4417")
print(token_create(user=user, name="sync")[1])
"""


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite"),
    reason="serves a throwaway SQLite file",
)
def test_two_servers_on_one_database_share_the_counts(tmp_path):
    """Failures sent to one `leakmap serve` lock the sign-in and the API on another: the counts
    live in the database, not in a process."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "leakmap.config.settings",
        "LEAKMAP_SECRET_KEY": "test-only",
        "LEAKMAP_RULES_INTERVAL": "0",
        "PYTHONPATH": str(REPO),
    }
    env.pop("DATABASE_TEST_NAME", None)
    run = {"cwd": tmp_path, "env": env, "check": True, "capture_output": True, "text": True}
    subprocess.run([sys.executable, "-m", "leakmap", "migrate", "-v0"], **run)
    token = subprocess.run([sys.executable, "-c", SEED], **run).stdout.strip()

    servers = []
    try:
        for _ in range(2):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "leakmap", "serve", "--port", str(port), "--workers", "1"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            servers.append(proc)
            wait_until_up(port)
            proc.port = port
        first, second = (f"http://127.0.0.1:{p.port}" for p in servers)

        browser = HttpBrowser()
        assert [browser.sign_in(first, "alice", "wrong-guess") for _ in range(LIMIT)] == [200] * (
            LIMIT - 1
        ) + [429]
        assert browser.sign_in(second, "alice", "copper-kettle-4417") == 429

        for i in range(LIMIT):
            assert http_status(f"{first}/api/v1/leads", f"lmk_abcd1234_guess{i}") == 401
        assert http_status(f"{second}/api/v1/leads", token) == 429
    finally:
        for proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"leakmap serve did not start on port {port}")


def http_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


class HttpBrowser:
    """Cookies and the CSRF token, as a browser keeps them, across both servers (one key)."""

    def __init__(self):
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            NoRedirect,
        )

    def sign_in(self, base: str, username: str, password: str) -> int:
        page = self.opener.open(f"{base}/login/", timeout=30).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": csrf}
        ).encode()
        try:
            with self.opener.open(f"{base}/login/", data=data, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
