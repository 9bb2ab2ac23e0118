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
