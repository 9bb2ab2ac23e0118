"""The password policy (AUTH_PASSWORD_VALIDATORS) wherever a password is set: `leakmap user
add/passwd`, the settings pages, the Django admin. Factories set passwords directly and are
not held to it."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from leakmap.accounts import services
from leakmap.accounts.models import User
from leakmap.accounts.services import password_generate

RIGHT = "pass-word-123"  # tests.factories.UserFactory's password

WEAK = {
    "short": "Too-sh0rt",  # 9 characters
    "common": "password123",
    "numeric": "2026031512345",
    "like the e-mail address": "alice@example",
}


def run_user(*args: str, stdin: str = ""):
    """`leakmap user …` in this process, with standard input."""
    import sys

    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        out = io.StringIO()
        call_command("user", *args, stdout=out)
        return out.getvalue()
    finally:
        sys.stdin = saved


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


@pytest.mark.parametrize("kind", WEAK)
def test_passwd_refuses_a_weak_password_and_changes_nothing(rep, kind):
    rep.email = "alice@example.com"
    rep.display_name = "alice rep"
    rep.save()
    with pytest.raises(CommandError) as exc:
        run_user("passwd", "alice", "--password-stdin", stdin=WEAK[kind] + "\n")
    assert exc.value.returncode == 2
    assert str(exc.value).startswith("password: ")
    rep.refresh_from_db()
    assert rep.check_password(RIGHT)


def test_passwd_names_every_rule_broken(rep):
    with pytest.raises(CommandError) as exc:
        run_user("passwd", "alice", "--password-stdin", stdin="12345678\n")
    message = str(exc.value)
    assert "too short" in message and "at least 10 characters" in message
    assert "too common" in message and "entirely numeric" in message


def test_passwd_sets_a_strong_password(rep):
    out = run_user("passwd", "alice", "--password-stdin", stdin="copper-kettle-4417\n")
    assert "password set for alice" in out
    rep.refresh_from_db()
    assert rep.check_password("copper-kettle-4417")


def test_user_add_refuses_a_weak_password_and_creates_nothing(db):
    with pytest.raises(CommandError) as exc:
        run_user("add", "zhangwei", "--role", "rep", "--team", "新团队", "--password-stdin",
                 stdin="zhangwei2026\n")  # fmt: skip
    assert exc.value.returncode == 2
    assert "too similar to the username" in str(exc.value)
    assert not User.objects.filter(username="zhangwei").exists()
    from leakmap.accounts.models import Team

    assert not Team.objects.filter(name="新团队").exists()


def test_generated_passwords_pass_the_policy(db):
    # `leakmap user add` without --password-stdin prints one; the demo prints its logins'.
    out = run_user("add", "li", "--role", "rep")
    generated = out.split("password: ")[1].strip()
    validate_password(generated, User.objects.get(username="li"))


def test_it_draws_again_when_a_random_password_reads_like_the_username(monkeypatch):
    """A random string can share enough letters with a long username to count as similar;
    the demo and `user add` then draw again instead of printing a password the policy
    would refuse."""
    draws = iter(["zhoujingli2x", "Xk3-9vQ_pL2aTq7w"])
    monkeypatch.setattr(services.secrets, "token_urlsafe", lambda n: next(draws))
    user = User(username="zhoujingli", display_name="周经理")
    assert password_generate(user) == "Xk3-9vQ_pL2aTq7w"
    validate_password("Xk3-9vQ_pL2aTq7w", user)


# --- The settings pages -------------------------------------------------------------------------


@pytest.fixture
def admin_client(admin_user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(admin_user)
    return client


def test_the_new_user_page_refuses_a_weak_password_on_its_field(admin_client):
    response = admin_client.post(
        "/settings/users/new/", {"username": "carol", "role": "rep", "password": "1234567890"}
    )
    assert response.status_code == 422
    assert "This password is entirely numeric." in response.content.decode()
    assert response.context["form"].errors["password"]
    assert not User.objects.filter(username="carol").exists()


def test_the_edit_user_page_refuses_a_weak_password_and_keeps_the_old(admin_client, rep):
    data = {"role": "rep", "is_active": "on", "password": "password1"}
    response = admin_client.post(f"/settings/users/{rep.pk}/", data)
    assert response.status_code == 422
    assert response.context["form"].errors["password"]
    rep.refresh_from_db()
    assert rep.check_password(RIGHT)

    data["password"] = "copper-kettle-4417"
    assert admin_client.post(f"/settings/users/{rep.pk}/", data).status_code == 302
    rep.refresh_from_db()
    assert rep.check_password("copper-kettle-4417")


def test_the_django_admin_holds_passwords_to_the_policy(admin_client, rep):
    response = admin_client.post(
        f"/admin/accounts/user/{rep.pk}/password/",
        {"password1": "1234567890", "password2": "1234567890"},
    )
    assert response.status_code == 200
    assert "This password is entirely numeric." in response.content.decode()
    rep.refresh_from_db()
    assert rep.check_password(RIGHT)

    response = admin_client.post(
        "/admin/accounts/user/add/",
        {"username": "dave", "password1": "dave12345", "password2": "dave12345",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 200
    assert not User.objects.filter(username="dave").exists()
