"""`leakmap check --deploy` with the README's production settings, in a process of its own (the
settings are read once, from the environment, when the process starts)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # The test session's own switches (DJANGO_ALLOW_ASYNC_UNSAFE for Playwright, …) are
        # not a production server's.
        if not k.startswith(("LEAKMAP_", "DJANGO_", "DATABASE_"))
    }
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'leakmap.sqlite3'}",
            "LEAKMAP_SITE_URL": "https://crm.example.com",
            "LEAKMAP_SECRET_KEY": secrets.token_urlsafe(50),
            "LEAKMAP_ALLOWED_HOSTS": "crm.example.com",
            "LEAKMAP_DEBUG": "false",
        }
    )
    env.update(changes)
    return env


def check_deploy(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "leakmap", "check", "--deploy"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_reports_no_issue_with_the_production_settings(tmp_path):
    result = check_deploy(production_env(tmp_path), tmp_path)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"LEAKMAP_SECRET_KEY": "changeme"}, ["security.W009"]),
        (
            {"LEAKMAP_SITE_URL": "http://crm.example.com"},
            ["security.W004", "security.W008", "security.W012", "security.W016"],
        ),
        ({"LEAKMAP_DEBUG": "true"}, ["security.W018"]),
    ],
    ids=["weak-secret-key", "https-off", "debug-on"],
)
def test_it_warns_about_an_unsafe_production_setting(tmp_path, changes, expected):
    result = check_deploy(production_env(tmp_path, **changes), tmp_path)

    output = result.stdout + result.stderr
    for code in expected:
        assert code in output, output
    assert f"identified {len(expected)} issue" in output, output


def test_it_switches_https_protections_on_from_the_site_url(tmp_path):
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.CSRF_TRUSTED_ORIGINS,"
        " getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))"
    )

    def read(**changes):
        env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="leakmap.config.settings", **changes)
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    assert read() == ('[true, true, true, 31536000, false, ["https://crm.example.com"], null]')
    assert read(LEAKMAP_SITE_URL="http://127.0.0.1:8000") == (
        '[false, false, false, 0, false, ["http://127.0.0.1:8000"], null]'
    )
    # Trusting X-Forwarded-Proto is an explicit choice, never a default.
    assert read(LEAKMAP_BEHIND_PROXY="true").endswith(
        '["https://crm.example.com"], ["HTTP_X_FORWARDED_PROTO", "https"]]'
    )


def test_it_refuses_a_site_url_that_is_not_an_http_url(tmp_path):
    result = check_deploy(production_env(tmp_path, LEAKMAP_SITE_URL="crm.example.com"), tmp_path)

    assert result.returncode == 2
    assert "LEAKMAP_SITE_URL='crm.example.com'" in result.stderr
    assert "Traceback" not in result.stderr
