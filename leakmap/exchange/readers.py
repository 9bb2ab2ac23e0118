"""Reading CSV (UTF-8 with or without BOM, or GB18030 as Chinese Excel saves it) and .xlsx files
as a stream of rows, numbered as a spreadsheet user sees them (the header is row 1)."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.utils.translation import gettext as _

from leakmap.exchange.cells import unescape_cells
from leakmap.exchange.columns import KINDS, REQUIRED
from leakmap.exchange.limits import archive_problem

# Long enough to hold a field bigger than csv's 128 KiB default (notes can be long).
csv.field_size_limit(16 * 1024 * 1024)

SNIFF_BYTES = 1 << 20


class FileError(Exception):
    """The file as a whole cannot be read (missing, wrong format, bad header)."""


def detect_encoding(path: Path) -> str:
    """utf-8-sig when the file starts with a BOM; utf-8 when the first MiB decodes as UTF-8;
    otherwise GB18030 (what Excel writes for "CSV" on a Chinese Windows)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        # final=False: a multi-byte character cut at the end of the sample is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read, for a progress bar over a streamed CSV."""

    def __init__(self, fh):
        self.fh = fh
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.fh.readinto(buffer)
        self.count += n or 0
        return n


@dataclass
class Table:
    """An open file: its header, a row iterator and a progress measure."""

    path: Path
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (spreadsheet row number, cells as text)
    total: int  # progress units: bytes for CSV, rows for xlsx
    position: callable  # () -> units done so far
    close: callable


def _cell_text(value) -> str:
    """An xlsx cell as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Excel stores numbers as floats: 12.0 is 12, and repr gives the shortest exact text.
        return str(Decimal(repr(value)).normalize()) if value != int(value) else str(int(value))
    return str(value).strip()


def open_table(path: str | os.PathLike) -> Table:
    path = Path(path)
    if not path.is_file():
        raise FileError(_("%(f)s: no such file") % {"f": path})
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _open_xlsx(path)
    if suffix in (".csv", ".txt"):
        return _open_csv(path)
    raise FileError(_("%(f)s: use a .csv or .xlsx file") % {"f": path})


def _open_csv(path: Path) -> Table:
    encoding = detect_encoding(path)
    raw = open(path, "rb")  # noqa: SIM115 - closed by Table.close
    counter = _CountingReader(raw)
    text = io.TextIOWrapper(io.BufferedReader(counter, 1 << 16), encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        text.close()
        raise FileError(_("%(f)s: cannot read the header: %(e)s") % {"f": path, "e": exc}) from exc
    if header is None:
        text.close()
        raise FileError(_("%(f)s: the file is empty") % {"f": path})

    def rows():
        n = 1
        try:
            for n, cells in enumerate(reader, start=2):
                if not any(c.strip() for c in cells):
                    continue  # spreadsheets leave blank lines at the end
                # leakmap's downloads put a "'" before text starting with = + - @ tab or CR, so
                # that Excel or WPS never runs a name like =HYPERLINK(...) as a formula
                # (cells.py). Taking exactly that one "'" off is what makes a download import
                # back unchanged: a lead named "=SUM(1)" comes back as "=SUM(1)", not
                # "'=SUM(1)". Excel treats a "'" typed before such text the same way: a mark
                # that the cell is text, not part of its value.
                yield n, unescape_cells(cells)
        except UnicodeDecodeError as exc:
            raise FileError(
                _("%(f)s:%(n)s: the file is not valid %(enc)s text")
                % {"f": path, "n": n + 1, "enc": encoding}
            ) from exc
        except csv.Error as exc:
            raise FileError(f"{path}:{n + 1}: {exc}") from exc

    return Table(
        path=path,
        header=header,
        rows=rows(),
        total=path.stat().st_size,
        position=lambda: counter.count,
        close=text.close,
    )


def _open_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    # Before openpyxl unpacks anything: a small file may unpack to gigabytes.
    problem = archive_problem(path)
    if problem:
        raise FileError(f"{path}: {problem}")
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or mislabelled file
        raise FileError(
            _("%(f)s: not a readable .xlsx file (%(e)s)") % {"f": path, "e": exc}
        ) from exc
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    try:
        first = next(it, None)
    except Exception as exc:  # as in rows() below
        wb.close()
        raise FileError(
            _("%(f)s: not a readable .xlsx file (%(e)s)") % {"f": path, "e": exc}
        ) from exc
    if first is None:
        wb.close()
        raise FileError(_("%(f)s: the file is empty") % {"f": path})
    header = [_cell_text(v) for v in first]
    while header and header[-1] == "":
        header.pop()  # trailing formatted-but-empty cells
    done = [1]

    def rows():
        n = 1
        try:
            for n, values in enumerate(it, start=2):
                done[0] = n
                cells = [_cell_text(v) for v in values]
                if not any(cells):
                    continue
                yield n, unescape_cells(cells)  # the "'" of our downloads off, as in _open_csv
        except Exception as exc:  # a damaged sheet: openpyxl raises many kinds mid-stream
            raise FileError(
                _("%(f)s:%(n)s: not a readable .xlsx file (%(e)s)")
                % {"f": path, "n": n + 1, "e": exc}
            ) from exc

    return Table(
        path=path,
        header=header,
        rows=rows(),
        total=ws.max_row or 1,
        position=lambda: done[0],
        close=wb.close,
    )


def check_header(kind: str, table: Table) -> dict[str, int]:
    """Column name → index. Unknown, duplicated or missing required columns are an error."""
    known = KINDS[kind]
    index: dict[str, int] = {}
    problems: list[str] = []
    for i, name in enumerate(table.header):
        col = name.strip().lstrip("\ufeff").strip()
        if col not in known:
            problems.append(
                _("unknown column '%(c)s' (the %(k)s columns are: %(cols)s)")
                % {"c": col, "k": kind, "cols": ", ".join(known)}
            )
        elif col in index:
            problems.append(_("column '%(c)s' appears twice") % {"c": col})
        else:
            index[col] = i
    for col in REQUIRED[kind]:
        if col not in index:
            problems.append(_("required column '%(c)s' is missing") % {"c": col})
    if problems:
        raise FileError("\n".join(f"{table.path}:1: {p}" for p in problems))
    return index
