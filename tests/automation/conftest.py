from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

from leakmap.automation.models import Rule
from leakmap.automation.rules import RunResult, run_rules
from tests.factories import T0

CONTEXT_PROCESSOR = "leakmap.automation.context_processors.notifications"


class Clock:
    """The time the rules run believes it is; tests move it forward explicitly."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def at(self, delta: dt.timedelta) -> Clock:
        self.now = T0 + delta
        return self

    def advance(self, **delta) -> Clock:
        self.now += dt.timedelta(**delta)
        return self

    def run(self) -> RunResult:
        return run_rules(as_of=self.now)


@pytest.fixture(autouse=True)
def english(settings):
    """Texts are written in the recipient's language, else the install's: English here, so
    that assertions read plainly; one test checks the Chinese."""
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def clock(db) -> Clock:
    return Clock(T0)


@pytest.fixture
def only_rule(db):
    """Switch every rule off but the one under test, so a test sees only its own firings."""

    def only(key: str, **changes) -> Rule:
        Rule.objects.exclude(key=key).update(is_active=False)
        rule = Rule.objects.get(key=key)
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.is_active = True
        rule.save()
        return rule

    return only


@pytest.fixture
def web_settings(settings):
    """The lead adds the context processor to settings.TEMPLATES on merge; base.html comes from
    the web app's branch, so these tests bring a tiny one with a `content` block."""
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [Path(__file__).parent / "templates", *templates[0]["DIRS"]]
    if CONTEXT_PROCESSOR not in templates[0]["OPTIONS"]["context_processors"]:
        templates[0]["OPTIONS"]["context_processors"].append(CONTEXT_PROCESSOR)
    settings.TEMPLATES = templates
    return settings
