"""The OpenAPI document, its docs page, and Schemathesis fuzzing the live API against it."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings

from leakmap.api.tokens import token_create
from tests.factories import LeadFactory, make_deal


def test_it_publishes_the_openapi_document(db):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    assert {
        "/api/v1/leads",
        "/api/v1/leads/{lead_id}/convert",
        "/api/v1/deals/{deal_id}/move",
        "/api/v1/deals/{deal_id}/won",
        "/api/v1/deals/{deal_id}/lost",
        "/api/v1/accounts",
        "/api/v1/contacts",
        "/api/v1/activities",
    } <= paths
    assert "/api/v1/reports/{name}" in paths
    assert doc["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/api/v1/leads"]["get"]["security"] == [
        {"TokenAuth": []},
        {"SessionAuth": []},
    ]


def test_it_serves_the_docs_page_from_vendored_assets(db):
    page = Client().get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    assert "cdn" not in html.lower()
    for src in sources:
        assert Client().get(src).status_code == 200, src
    assert "/static/api/swagger-ui/swagger-ui-bundle.js" in sources


@pytest.fixture
def api_schema(db, rep, teammate, outsider, settings):
    # Schemathesis sends many requests with a wrong token from one address; the lockout that
    # would follow (tests/accounts/test_lockout.py) is not what these cases exercise.
    settings.LEAKMAP_LOGIN_FAILURE_LIMIT = 10**6
    # Some records for the generated calls to find, of the caller and of others.
    LeadFactory(owner=rep)
    LeadFactory(owner=outsider)
    make_deal(owner=rep)
    make_deal(owner=teammate)
    _token, clear = token_create(user=rep, name="schemathesis")
    # The real WSGI application, middleware and all, called in-process: the same stack
    # `leakmap serve` runs, without a socket per generated case. Like Django's test client, keep
    # the handler from closing the test's database connection at the end of each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
        schema.config.headers = {"Authorization": f"Bearer {clear}"}
        yield schema
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_it_survives_schemathesis_without_5xx_and_within_the_schema(case, api_schema):
    # Every other default check runs (no 5xx, documented status codes and content types,
    # bodies matching the response schemas, invalid data rejected). "Schema-valid data is
    # accepted" does not hold for business rules the schema cannot state — an unknown stage
    # key, a forged cursor, a lead already converted — which rightly answer 422.
    case.call_and_validate(
        headers=api_schema.config.headers,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
