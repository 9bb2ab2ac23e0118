"""The managers' daily digest: once per local day (Asia/Shanghai), from 08:00 local."""

from __future__ import annotations

import datetime as dt

import pytest

from leakmap.automation.models import Notification, RuleFiring
from leakmap.automation.rules import run_rules
from leakmap.crm import services
from tests.factories import LeadFactory, TeamFactory, UserFactory, make_deal

UTC = dt.UTC


def local(y, m, d, hh, mm=0) -> dt.datetime:
    """A Shanghai wall-clock time (UTC+8) as an aware UTC datetime."""
    return dt.datetime(y, m, d, hh, mm, tzinfo=UTC) - dt.timedelta(hours=8)


@pytest.fixture
def slips(rep, outsider, settings):
    settings.SITE_URL = "https://crm.example.com"
    stuck = make_deal(owner=rep, name="Stuck one", created_at=dt.datetime(2025, 12, 25, tzinfo=UTC))
    overdue = make_deal(
        owner=rep,
        name="Late call",
        created_at=dt.datetime(2026, 1, 4, tzinfo=UTC),
        next_follow_up=dt.datetime(2026, 1, 5, tzinfo=UTC),
    )
    fresh = make_deal(owner=rep, name="Fresh", created_at=dt.datetime(2026, 1, 5, tzinfo=UTC))
    lead = LeadFactory(
        owner=rep, name="Wang", company="", created_at=dt.datetime(2026, 1, 3, tzinfo=UTC)
    )
    contacted = LeadFactory(owner=rep, created_at=dt.datetime(2026, 1, 3, tzinfo=UTC))
    services.activity_log(
        services.ActivityInput(
            owner=rep, kind="call", lead=contacted, done_at=dt.datetime(2026, 1, 3, 5, tzinfo=UTC)
        )
    )
    far = make_deal(
        owner=outsider, name="Far away", created_at=dt.datetime(2025, 12, 20, tzinfo=UTC)
    )
    return {"stuck": stuck, "overdue": overdue, "fresh": fresh, "lead": lead, "far": far}


def digests():
    return list(
        Notification.objects.filter(kind="manager_digest")
        .order_by("id")
        .values_list("recipient__username", "title")
    )


def test_it_sends_each_manager_one_digest_per_local_day_from_eight(only_rule, manager, slips):
    only_rule("manager_digest")
    south = UserFactory(username="south_manager", role="manager", team=TeamFactory(name="华南组"))
    UserFactory(username="idle_manager", role="manager", team=TeamFactory(name="空组"))

    assert run_rules(as_of=local(2026, 1, 6, 7, 59)).firings == []
    result = run_rules(as_of=local(2026, 1, 6, 8, 0))
    assert sorted(f.record_id for f in result.firings) == sorted([manager.pk, south.pk])
    assert digests() == [
        (
            "manager",
            "Daily digest: 1 stuck deal, 1 overdue follow-up, 1 lead without first contact",
        ),
        (
            "south_manager",
            "Daily digest: 1 stuck deal, 0 overdue follow-ups, 0 leads without first contact",
        ),
    ]
    body = Notification.objects.get(recipient=manager).body
    assert body == (
        "1 stuck deal\n"
        f"- Stuck one (Alice): https://crm.example.com/deals/{slips['stuck'].pk}/\n"
        "\n"
        "1 overdue follow-up\n"
        f"- Late call (Alice): https://crm.example.com/deals/{slips['overdue'].pk}/\n"
        "\n"
        "1 lead without first contact\n"
        f"- Wang (Alice): https://crm.example.com/leads/{slips['lead'].pk}/"
    )

    # Later the same local day: nothing; the next local day: again.
    assert run_rules(as_of=local(2026, 1, 6, 23, 59)).firings == []
    assert run_rules(as_of=local(2026, 1, 7, 7, 0)).firings == []
    assert len(run_rules(as_of=local(2026, 1, 7, 8, 30)).firings) == 2
    assert RuleFiring.objects.filter(rule__key="manager_digest").count() == 4


def test_it_sends_no_digest_when_nothing_slipped(only_rule, manager, rep):
    only_rule("manager_digest")
    make_deal(owner=rep, created_at=local(2026, 1, 6, 7))
    assert run_rules(as_of=local(2026, 1, 6, 9)).firings == []
    assert digests() == []
