from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from tests.factories import TeamFactory, UserFactory

# On CI the property tests draw the same examples every run, so a red build is reproducible;
# on a developer's machine they keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def team(db):
    return TeamFactory(name="华东一组")


@pytest.fixture
def manager(team):
    return UserFactory(username="manager", role="manager", team=team)


@pytest.fixture
def rep(team, manager):
    """The owner in the base case: a rep with a teammate and an outsider beside them."""
    return UserFactory(username="alice", role="rep", team=team, manager=manager)


@pytest.fixture
def teammate(team, manager):
    return UserFactory(username="bob", role="rep", team=team, manager=manager)


@pytest.fixture
def outsider(db):
    return UserFactory(username="mallory", role="rep", team=TeamFactory(name="华南组"))


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role="admin", team=None, is_staff=True, is_superuser=True)


def _is_transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (
        marker.kwargs.get("transaction") or (marker.args and marker.args[0])
    ):
        return True
    return bool(
        {"transactional_db", "live_server", "django_db_reset_sequences"} & set(request.fixturenames)
    )


def _uses_db(request) -> bool:
    return request.node.get_closest_marker("django_db") is not None or "db" in request.fixturenames


@pytest.fixture(autouse=True)
def _defaults_after_flush(request):
    """A transactional test (live servers, concurrent processes) ends with a flush that also
    removes what data migrations installed — the default pipeline, lost reasons and rules — and
    on a shared worker the tests after it would find none. Put them back when they are missing,
    so test order never matters: for a transactional test for good, for an ordinary one inside
    its transaction."""
    if _is_transactional(request):
        request.getfixturevalue("transactional_db")
    elif _uses_db(request):
        request.getfixturevalue("db")
    else:
        yield
        return
    from django.apps import apps

    from leakmap.automation.defaults import install_default_rules
    from leakmap.automation.models import Rule
    from leakmap.crm.defaults import install_defaults
    from leakmap.crm.models import Stage

    if not Stage.objects.exists():
        install_defaults(apps)
    if not Rule.objects.exists():
        install_default_rules(apps)
    yield
