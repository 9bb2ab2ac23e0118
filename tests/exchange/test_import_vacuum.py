"""After an import commits on PostgreSQL, the tables it fills are vacuumed, so that the reports'
index-only scans (stage-time's sorted stays) do not fetch every fresh row from the heap, and
the tallies rewritten without the row versions the import's batches left behind."""

from __future__ import annotations

import pytest
from django.db import connection

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
