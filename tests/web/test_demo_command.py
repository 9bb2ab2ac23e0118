"""`leakmap demo` without --no-serve hands over to the server `leakmap serve` runs."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.utils import translation


@pytest.mark.django_db
def test_it_serves_on_the_given_port_after_loading(monkeypatch):
    served: list[dict] = []
    monkeypatch.setattr("leakmap.web.server.run_server", lambda **kwargs: served.append(kwargs))
    # Loading the company is test_generate_and_demo's business; here the database has data.
    monkeypatch.setattr("leakmap.web.management.commands.demo.load_demo", lambda: None)
    out = io.StringIO()
    with translation.override("zh-hans"):
        call_command("demo", "--port", "8123", stdout=out)
    assert served == [{"host": "127.0.0.1", "port": 8123, "workers": 2}]
    # In the install's default language, from the web app's catalogue.
    assert "服务运行在 http://127.0.0.1:8123/" in out.getvalue()
