"""crm_leadtally, the lead counts per (owner, source, status, converted, contacted within a day),
is kept by database triggers. Whatever writes the leads — services, imports, bulk UPDATEs,
deletes — the tally must equal a count of the leads themselves, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakmap.crm import services, tallies
from leakmap.crm.models import Lead, LeadStatus, LeadTally
from tests.exchange.helpers import run_import, write
from tests.factories import T0, LeadFactory, SourceFactory, UserFactory, days


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def tallied() -> Counter:
    return Counter(
        {
            (t.owner_key, t.source_key, t.status, t.converted, t.contacted_within_day): t.n
            for t in LeadTally.objects.exclude(n=0)
        }
    )


def assert_tally_matches():
    """The table the triggers keep equals the tally's recount from the leads (crm.tallies);
    latest_at is at least the recount's bound."""
    assert tallies.differences(tallies.LEADS) == []


def test_the_services_keep_the_tally(rep):
    web, fair = SourceFactory(name="官网"), SourceFactory(name="展会")
    bob = UserFactory(username="bob")
    a = services.lead_create(services.LeadInput(name="张三", owner=rep, source=web, created_at=T0))
    b = services.lead_create(
        services.LeadInput(name="李四", owner=None, source=None, created_at=T0)
    )
    assert tallied() == Counter(
        {(rep.pk, web.pk, "new", False, False): 1, (0, 0, "new", False, False): 1}
    )
    # A call within the day: contacted within a day; a call on the next day is not.
    services.activity_log(
        services.ActivityInput(lead=a, kind="call", owner=rep, done_at=T0 + hours(3))
    )
    services.activity_log(
        services.ActivityInput(lead=b, kind="call", owner=rep, done_at=T0 + days(2))
    )
    assert_tally_matches()
    services.lead_update(lead=a, source=fair)
    services.lead_assign(lead=b, owner=bob)
    services.leads_assign(lead_ids=[a.pk, b.pk], owner=bob)
    assert_tally_matches()
    services.lead_disqualify(lead=Lead.objects.get(pk=b.pk), reason="无预算")
    services.lead_convert(lead=Lead.objects.get(pk=a.pk), by=bob, at=T0 + days(3))
    assert_tally_matches()
    assert tallied()[(bob.pk, fair.pk, "converted", True, True)] == 1
    services.lead_delete(lead=Lead.objects.get(pk=b.pk))
    assert_tally_matches()
    assert sum(tallied().values()) == 1


def test_plain_updates_and_deletes_keep_the_tally(rep):
    web = SourceFactory(name="官网")
    for i in range(6):
        LeadFactory(owner=rep if i % 2 else None, source=web, created_at=T0 + hours(i))
    Lead.objects.filter(owner__isnull=True).update(first_contacted_at=T0 + hours(30))
    Lead.objects.filter(owner=rep).update(status=LeadStatus.QUALIFIED, owner=None)
    assert_tally_matches()
    Lead.objects.filter(created_at__lt=T0 + hours(3)).delete()
    assert_tally_matches()
    assert sum(tallied().values()) == 3


def test_imports_keep_the_tally(tmp_path, rep):
    run_import(
        "leads",
        write(
            tmp_path / "leads.csv",
            "external_id,name,owner,source,created_at\n"
            "L1,张三,alice,官网,2026-01-05\nL2,李四,alice,展会,2026-01-05\nL3,王五,,,2026-01-06\n",
        ),
    )
    assert_tally_matches()
    # A re-import moves L1 to another source and owner.
    UserFactory(username="bob")
    run_import(
        "leads",
        write(
            tmp_path / "leads2.csv",
            "external_id,name,owner,source,created_at\nL1,张三,bob,转介绍,2026-01-05\n",
        ),
    )
    assert_tally_matches()
    assert sum(tallied().values()) == 3


OPERATIONS = ("create", "contact", "convert", "disqualify", "assign", "source", "delete", "bulk")


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10**6))
def test_any_sequence_of_writes_keeps_the_tally(seed, db):
    rnd = random.Random(seed)
    with transaction.atomic():
        owners = [None, *(UserFactory(username=f"rep{i}") for i in range(2))]
        sources = [None, *(SourceFactory(name=f"src{i}") for i in range(2))]
        for _step in range(rnd.randint(5, 25)):
            leads = list(Lead.objects.all())
            op = rnd.choice(OPERATIONS) if leads else "create"
            lead = rnd.choice(leads) if leads else None
            if op == "create":
                services.lead_create(
                    services.LeadInput(
                        name="x",
                        owner=rnd.choice(owners),
                        source=rnd.choice(sources),
                        created_at=T0 + hours(rnd.randint(0, 100)),
                    )
                )
            elif op == "contact":
                # Around the one-day line, on both sides.
                at = lead.created_at + hours(rnd.choice([-1, 1, 23, 24, 25, 48]))
                services.activity_log(
                    services.ActivityInput(lead=lead, kind="call", owner=owners[1], done_at=at)
                )
            elif op == "convert" and lead.status not in (
                LeadStatus.CONVERTED,
                LeadStatus.DISQUALIFIED,
            ):
                services.lead_convert(lead=lead, by=owners[1], at=T0 + days(5))
            elif op == "disqualify" and lead.status != LeadStatus.CONVERTED:
                services.lead_disqualify(lead=lead, reason="无预算")
            elif op == "assign":
                services.lead_assign(lead=lead, owner=rnd.choice(owners))
            elif op == "source":
                services.lead_update(lead=lead, source=rnd.choice(sources))
            elif op == "delete":
                services.lead_delete(lead=lead)
            elif op == "bulk":
                Lead.objects.filter(pk__in=[x.pk for x in leads[::2]]).update(
                    owner=rnd.choice(owners)
                )
            assert_tally_matches()
        transaction.set_rollback(True)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_truncate_empties_the_tally(rep):
    LeadFactory(owner=rep)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks left to run
        cursor.execute("TRUNCATE crm_lead CASCADE")
    assert not tallied()
