from __future__ import annotations

import os
from decimal import Decimal

import pytest

from tests.factories import LeadFactory, SourceFactory, make_deal
from tests.web.browser import ARGS, CHROMIUM, require_chromium

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
# thread with a running loop unless told that this is fine (it is: the loop is Playwright's).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    """Debian's Chromium under Playwright, for the tests marked `browser`."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def source(db):
    return SourceFactory(name="官网表单")


@pytest.fixture
def rep_lead(rep, source):
    return LeadFactory(
        owner=rep, source=source, name="张伟", company="上海云帆科技", budget=Decimal("80000")
    )


@pytest.fixture
def rep_deal(rep):
    return make_deal(owner=rep, name="云帆 ERP", amount=120000)


@pytest.fixture
def outsider_deal(outsider):
    return make_deal(owner=outsider, name="华南 CRM", amount=50000)


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login
