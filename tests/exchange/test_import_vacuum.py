"""After an import commits on PostgreSQL, the tables it fills are vacuumed, so that the reports'
index-only scans (stage-time's sorted stays) do not fetch every fresh row from the heap, and
the tallies, and any imported table the import left mostly empty, rewritten without the row
versions its batches left behind."""

from __future__ import annotations

import pytest
from django.db import connection

from leakmap.crm import bulk
from leakmap.crm.models import Lead
from tests.exchange.helpers import run_import, write
from tests.factories import UserFactory


def file_of(table: str) -> int:
    """The table's file node: VACUUM FULL writes the table anew under a new one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_filenode(%s)", [table])
        return cursor.fetchone()[0]


def vacuumed(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_an_import_leaves_its_tables_vacuumed_on_postgresql(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("VACUUM and its statistics are PostgreSQL's")
    UserFactory(username="rep1")
    before = vacuumed("crm_lead")
    tally_files = {t: file_of(t) for t in ("crm_leadtally", "crm_dealtally", "crm_staytally")}
    path = write(
        tmp_path / "leads.csv",
        "external_id,name,owner,created_at\nL1,张三,rep1,2026-04-02T09:00\n",
    )
    run_import("leads", path)
    assert Lead.objects.filter(external_id="L1").exists()
    assert vacuumed("crm_lead") == before + 1
    # The tallies, which every batch's triggers rewrite, are written anew without the old
    # row versions.
    assert all(file_of(t) != node for t, node in tally_files.items()), tally_files
    # A dry run writes nothing, so it has nothing to vacuum.
    run_import("leads", path, "--dry-run")
    assert vacuumed("crm_lead") == before + 1


@pytest.mark.django_db(transaction=True)
def test_an_import_rewrites_an_imported_table_left_mostly_empty(tmp_path, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("VACUUM FULL is PostgreSQL's")
    UserFactory(username="rep1")
    rows = "".join(f"L{i},客户{i},rep1,2026-04-02T09:00\n" for i in range(3000))
    run_import("leads", write(tmp_path / "leads.csv", f"external_id,name,owner,created_at\n{rows}"))
    # As the deal and activity imports do to the leads and deals they touch: every row
    # rewritten, more than once.
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("UPDATE crm_lead SET name = name || ''")
    monkeypatch.setattr(bulk, "MIN_WASTED_PAGES", 10)  # the test's tables are small
    lead_file, activity_file = file_of("crm_lead"), file_of("crm_activity")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM crm_lead")
        cursor.execute("SELECT relpages FROM pg_class WHERE relname = 'crm_lead'")
        sparse_pages = cursor.fetchone()[0]

    one_more = "external_id,name,owner,created_at\nL-new,新客户,rep1,2026-04-03T09:00\n"
    run_import("leads", write(tmp_path / "one.csv", one_more))
    assert file_of("crm_lead") != lead_file  # written anew
    assert file_of("crm_activity") == activity_file  # nothing to give back: left as it was
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'crm_lead'")
        pages, visible = cursor.fetchone()
    assert pages < sparse_pages / 2, (pages, sparse_pages)
    assert visible == pages  # the visibility map set again after FULL
    assert Lead.objects.count() == 3001

    # Compact now: the next import leaves it be.
    run_import("leads", write(tmp_path / "again.csv", one_more.replace("L-new", "L-again")))
    assert file_of("crm_lead") != lead_file
    compact_file = file_of("crm_lead")
    run_import("leads", write(tmp_path / "again2.csv", one_more.replace("L-new", "L-again2")))
    assert file_of("crm_lead") == compact_file
