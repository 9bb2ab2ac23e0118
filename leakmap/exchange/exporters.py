"""Exports in the import columns, streamed from the database (`iterator()`), so that
export → import round-trips and a million rows never sit in memory at once."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from django.db.models import F
from django.utils import timezone

from leakmap.accounts.models import User
from leakmap.crm.models import Activity, Deal, Lead, Spend, StageChange
from leakmap.exchange.cells import escape_formula, xlsx_cells
from leakmap.exchange.columns import KINDS

CHUNK = 2000


def _text(value) -> str:
    """A value as its cell text; text a spreadsheet would run as a formula gets a `'` in front
    (see cells.py). Numbers are formatted, never escaped: a negative amount stays -5.00."""
    if isinstance(value, str):
        return escape_formula(value)
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def _in_order(queryset):
    if queryset.query.order_by:
        return queryset
    return queryset.order_by("created_at", "external_id", "id")


def _rows(kind: str, queryset=None) -> Iterator[tuple]:
    """Rows of `kind` in the export's column order, oldest first (a stable order, so that two
    exports of the same data are the same file). `queryset` (leads or deals only) narrows the
    rows, for a list page's download of what its user may see and has filtered; when it is
    explicitly ordered (the user sorted the list), the file follows the list's order."""
    if queryset is not None and kind not in ("leads", "deals"):
        raise ValueError(kind)
    if kind == "users":
        qs = User.objects.order_by("username").values_list(
            "username", "display_name", "role", "team__name", "manager__username", "email"
        )
    elif kind == "leads":
        qs = _in_order(Lead.objects.all() if queryset is None else queryset).values_list(
            "external_id",
            "name",
            "company",
            "email",
            "phone",
            "source__name",
            "industry__name",
            "title",
            "budget",
            "product",
            "owner__username",
            "status",
            "created_at",
            "disqualified_reason",
        )
    elif kind == "deals":
        qs = _in_order(Deal.objects.all() if queryset is None else queryset).values_list(
            "external_id",
            "lead__external_id",
            "name",
            "account__name",
            "contact__name",
            "amount",
            "stage__key",
            "owner__username",
            "source__name",
            "industry__name",
            "created_at",
            "expected_close_date",
            "closed_at",
            "lost_reason__name",
            "competitor__name",
            "next_follow_up",
        )
    elif kind == "stage-history":
        qs = StageChange.objects.order_by(
            "deal__created_at", "deal__external_id", "deal_id", "at", "id"
        ).values_list("deal__external_id", "to_stage__key", "at")
    elif kind == "activities":
        qs = Activity.objects.order_by(
            F("done_at").asc(nulls_last=True), "due_at", "external_id", "id"
        ).values_list(
            "external_id",
            "deal__external_id",
            "lead__external_id",
            "kind",
            "subject",
            "owner__username",
            "due_at",
            "done_at",
            "notes",
        )
    elif kind == "spend":
        qs = Spend.objects.order_by("month", "source__name").values_list(
            "source__name", "month", "amount"
        )
        for source, month, amount in qs.iterator(chunk_size=CHUNK):
            yield (source, month.strftime("%Y-%m"), amount)
        return
    else:  # pragma: no cover - the command restricts kinds
        raise ValueError(kind)
    yield from qs.iterator(chunk_size=CHUNK)


class _Line:
    """A file-like object whose write returns what it was given: csv.writer then yields lines."""

    def write(self, value: str) -> str:
        return value


def csv_chunks(kind: str, queryset=None, *, rows_per_chunk: int = 1000) -> Iterator[str]:
    """The CSV file of `kind` (UTF-8 text with a BOM, so Excel opens the Chinese right) as
    pieces of about `rows_per_chunk` lines, for a streamed HTTP response."""
    writer = csv.writer(_Line())
    lines = ["\ufeff" + writer.writerow(KINDS[kind])]
    for row in _rows(kind, queryset):
        lines.append(writer.writerow([_text(v) for v in row]))
        if len(lines) >= rows_per_chunk:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def write_xlsx(kind: str, target, queryset=None) -> int:
    """Write `kind` as a one-sheet .xlsx to `target` (a path or a binary file object); returns
    the number of rows. openpyxl's write-only mode keeps one row in memory at a time."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(kind)
    ws.append(KINDS[kind])
    n = 0
    for row in _rows(kind, queryset):
        ws.append(xlsx_cells(ws, [_text(v) for v in row], escaped=True))
        n += 1
    wb.save(target)
    return n


def export(kind: str, path: str | Path) -> int:
    """Write `kind` to `path` (.csv as UTF-8 with BOM so Excel opens it right, or .xlsx).
    Returns the number of rows written."""
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        return write_xlsx(kind, path)
    columns = KINDS[kind]
    n = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in _rows(kind):
            writer.writerow([_text(v) for v in row])
            n += 1
    return n
