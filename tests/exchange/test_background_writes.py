"""The import's writer thread (bulk.background_writes): rows land in the same transaction, reads
after flush_writes see them, and an error in the writer reaches the importing thread."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from leakmap.crm import bulk
from leakmap.crm.models import Source

pytestmark = pytest.mark.django_db


def test_queued_rows_are_written_in_the_transaction_and_seen_after_a_flush():
    with transaction.atomic(), bulk.background_writes():
        bulk.insert_rows(Source, ["name"], [(f"s{i}",) for i in range(5000)])
        bulk.flush_writes()
        assert Source.objects.filter(name__startswith="s").count() == 5000
        bulk.insert_rows(Source, ["name"], [("late",)])
    assert Source.objects.filter(name="late").exists()  # written by the end of the block


def test_an_error_in_the_writer_is_raised_and_nothing_is_kept():
    Source.objects.create(name="taken")
    with pytest.raises(IntegrityError):
        with transaction.atomic(), bulk.background_writes():
            bulk.insert_rows(Source, ["name"], [("new",), ("taken",)])
            for _ in range(3):  # more work queued after the failing statement is dropped
                bulk.insert_rows(Source, ["name"], [("more",)])
    assert not Source.objects.filter(name__in=["new", "more"]).exists()


def test_other_backends_write_at_once():
    with transaction.atomic(), bulk.background_writes():
        bulk.insert_rows(Source, ["name"], [("now",)])
        if connection.vendor != "sqlite":
            assert Source.objects.filter(name="now").exists()


def _indexes(table: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
            " ORDER BY name",
            [table],
        )
        return cursor.fetchall()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="deferred indexes are SQLite's")
def test_a_fresh_import_rebuilds_the_indexes_it_dropped_and_a_failed_one_keeps_them(tmp_path, rep):
    from leakmap.crm.models import Lead
    from tests.exchange.helpers import import_fails, run_import, write

    before = _indexes("crm_lead")
    assert len(before) >= 5
    head = "external_id,name,owner,created_at,email\n"
    bad = write(tmp_path / "bad.csv", head + "L1,甲,alice,2026-01-01,a@b.cn\nL2,乙,alice,never,\n")
    import_fails("leads", bad)
    assert _indexes("crm_lead") == before
    good = write(tmp_path / "good.csv", head + "L1,甲,alice,2026-01-01,a@b.cn\n")
    run_import("leads", good)
    assert _indexes("crm_lead") == before
    assert Lead.objects.filter(email="a@b.cn").count() == 1  # and the rebuilt index has the row
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA integrity_check")
        assert cursor.fetchone()[0] == "ok"


def test_indexes_stay_when_the_table_is_not_empty(tmp_path, rep, monkeypatch):
    from tests.exchange.helpers import run_import, write

    dropped = []
    real = bulk.indexes_deferred

    def spy(model, **kw):
        dropped.append(model._meta.db_table)
        return real(model, **kw)

    monkeypatch.setattr(bulk, "indexes_deferred", spy)
    head = "external_id,name,owner,created_at\n"
    run_import("leads", write(tmp_path / "a.csv", head + "L1,甲,alice,2026-01-01\n"))
    run_import("leads", write(tmp_path / "b.csv", head + "L2,乙,alice,2026-01-01\n"))
    assert dropped == ["crm_lead"]  # only the first import found the table empty


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the writer thread is SQLite's")
def test_a_queued_statement_reads_its_placeholders_as_djangos_cursor_does():
    Source.objects.create(name="a%b")
    with transaction.atomic(), bulk.background_writes():
        bulk._writer.execute("UPDATE crm_source SET name = %s WHERE name = 'a%%b'", ["renamed"])
        bulk.flush_writes()
    assert Source.objects.filter(name="renamed").exists()
