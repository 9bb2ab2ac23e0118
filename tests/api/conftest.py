from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.test import Client

from leakmap.api.tokens import token_create

TEST_TEMPLATES = Path(__file__).parent / "templates"


class ApiClient:
    """A Django test client that speaks JSON with a bearer token, like an integration would."""

    def __init__(self, token: str | None):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, data=None, **params):
        url = f"/api/v1{path}"
        kwargs = {"headers": self.headers}
        if method in ("post", "patch", "put"):
            kwargs["data"] = json.dumps(data if data is not None else {})
            kwargs["content_type"] = "application/json"
        elif params:
            kwargs["data"] = params
        return getattr(self.client, method)(url, **kwargs)

    def get(self, path, **params):
        return self._call("get", path, **params)

    def post(self, path, data=None):
        return self._call("post", path, data)

    def patch(self, path, data=None):
        return self._call("patch", path, data)

    def delete(self, path):
        return self._call("delete", path)


def api_as(user) -> ApiClient:
    _token, clear = token_create(user=user, name="tests")
    return ApiClient(clear)


@pytest.fixture
def as_rep(rep):
    return api_as(rep)


@pytest.fixture
def as_teammate(teammate):
    return api_as(teammate)


@pytest.fixture
def as_outsider(outsider):
    return api_as(outsider)


@pytest.fixture
def as_manager(manager):
    return api_as(manager)


@pytest.fixture
def as_admin(admin_user):
    return api_as(admin_user)


@pytest.fixture
def base_template(settings):
    """The web app's base.html when it is installed, else a minimal stand-in for these tests."""
    try:
        get_template("base.html")
    except TemplateDoesNotExist:
        settings.TEMPLATES = [
            {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], TEST_TEMPLATES]}
        ]


def fields_of(response) -> set[str | None]:
    return {item["field"] for item in response.json()["detail"]}
