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
