from __future__ import annotations

import pytest

from tests.factories import TeamFactory, UserFactory


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


@pytest.fixture(autouse=True)
def _defaults_after_flush(request):
    """Transactional tests (live servers, concurrent processes) end with a flush that also removes
    what data migrations installed — the default pipeline, lost reasons and rules. Put them back
    at the start of each such test, so test order never matters."""
    if _is_transactional(request):
        request.getfixturevalue("transactional_db")
        from django.apps import apps

        from leakmap.automation.defaults import install_default_rules
        from leakmap.crm.defaults import install_defaults

        install_defaults(apps)
        install_default_rules(apps)
    yield
