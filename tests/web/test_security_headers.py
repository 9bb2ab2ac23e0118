"""Security headers on every response: Content-Security-Policy, framing, sniffing, referrer.

The browser side (no violation on the real pages, charts still drawn) is in
test_browser_csp.py; these tests hold the headers and the templates' rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from leakmap.api.models import WebForm
from leakmap.web.security import ContentSecurityPolicyMiddleware
from tests.api.conftest import api_as

ROOT = Path(__file__).resolve().parents[2]


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    out = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        out[name] = sources
    return out


def assert_strict_scripts(policy: dict[str, list[str]]) -> None:
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    # No <style> element and no stylesheet from elsewhere: only style="" attributes are inline.
    assert policy["style-src"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/", "/leads/", "/api/v1/openapi.json"])
def test_it_sends_a_strict_policy_and_no_framing_on_app_pages(path):
    response = Client().get(path)

    policy = directives(response)
    assert_strict_scripts(policy)
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_it_sends_the_headers_with_pages_of_a_signed_in_user(client, rep):
    client.force_login(rep)
    response = client.get("/deals/")

    assert response.status_code == 200
    assert_strict_scripts(directives(response))
    assert response["X-Frame-Options"] == "DENY"


def test_it_sends_the_headers_with_api_answers(rep):
    response = api_as(rep).get("/leads")

    assert response.status_code == 200
    assert_strict_scripts(directives(response))
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_sends_the_headers_with_static_files(client):
    response = client.get("/static/vendor/htmx/htmx.min.js")

    assert response.status_code == 200
    assert_strict_scripts(directives(response))
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_lets_other_sites_embed_the_web_to_lead_form_and_nothing_else(db):
    WebForm.objects.create(name="Trial", slug="trial", fields=["email"])

    response = Client().get("/api/forms/trial/")

    assert response.status_code == 200
    policy = directives(response)
    assert_strict_scripts(policy)
    assert policy["frame-ancestors"] == ["*"]
    # The form may redirect to the embedding site after a submission.
    assert "form-action" not in policy
    assert "X-Frame-Options" not in response
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_adds_a_nonce_only_to_responses_that_use_one():
    def with_inline_script(request):
        return HttpResponse(f'<script nonce="{request.csp_nonce}">go()</script>')

    def without(request):
        return HttpResponse("<p>plain</p>")

    request = RequestFactory().get("/")
    first = ContentSecurityPolicyMiddleware(with_inline_script)(request)
    second = ContentSecurityPolicyMiddleware(with_inline_script)(RequestFactory().get("/"))
    nonce = re.search(r'nonce="([^"]+)"', first.content.decode()).group(1)

    assert directives(first)["script-src"] == ["'self'", f"'nonce-{nonce}'"]
    assert len(nonce) >= 16
    assert directives(second)["script-src"] != directives(first)["script-src"]
    assert directives(ContentSecurityPolicyMiddleware(without)(request))["script-src"] == ["'self'"]


# Inline code that the policy would refuse: a <script> with a body (JSON data blocks excepted),
# an on…= event handler attribute, a javascript: URL.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)(?![^>]*nonce=)[^>]*>")
HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def test_it_keeps_every_template_free_of_inline_scripts_and_handlers():
    offenders = []
    for template in sorted((ROOT / "leakmap").glob("*/templates/**/*.html")):
        text = template.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, HANDLER, JS_URL):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                offenders.append(f"{template.relative_to(ROOT)}:{line}: {match.group(0)}")

    assert offenders == []
