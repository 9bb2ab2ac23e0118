"""Text cells in the spreadsheets leakmap writes and reads back.

A cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage return runs as a formula
when the file is opened in Excel or WPS (CSV injection, OWASP): a lead named
`=HYPERLINK("http://evil","x")` typed into a public web form would become a live link in a
manager's download. Every CSV and XLSX writer passes its values through `escape_formula`, which
puts a `'` in front of such text, as OWASP recommends; the import readers take that `'` off
again with `unescape_formula`, so that a download still imports back unchanged. This module has
no dependencies, so the report renderer (analytics) and the exports share it."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_STARTS = tuple("'" + c for c in FORMULA_STARTS)


def escape_formula(value: Any) -> Any:
    """`value` with a `'` in front when it is text a spreadsheet would run as a formula. Only
    text is touched: numbers (a negative amount stays the number -5), dates and None are
    returned as they are. Text that is already escaped starts with `'` and is left alone, so
    escaping twice changes nothing."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_formula(text: str) -> str:
    """The text `escape_formula` was given: exactly one leading `'` off when a formula start
    follows it (`'=SUM(1)` → `=SUM(1)`, `''=x` → `''=x`, `'abc` → `'abc`)."""
    if text.startswith(_ESCAPED_STARTS):
        return text[1:]
    return text


def unescape_cells(cells: list[str]) -> list[str]:
    """A row of imported cells with `unescape_formula` applied. Most rows hold no `'` at all and
    come back as they are after one scan of the joined text (an import reads millions of rows)."""
    if "'" not in "".join(cells):
        return cells
    return [unescape_formula(c) for c in cells]


def xlsx_cells(ws, values, *, escaped: bool = False) -> list:
    """Cells for a row of a write-only sheet: text stays text, even when it starts with "="
    (openpyxl otherwise stores it as a formula), with the same `'` in front as the CSV
    downloads, and loses the control characters an .xlsx file cannot hold (openpyxl refuses the
    whole file over one). Numbers stay numbers.

    `escaped=True`: the caller has escaped its text already and written its numbers as text (the
    exports' `_text`), so "-5.00" here is an amount and must not get a `'`."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cells = []
    for value in values:
        if isinstance(value, str):
            text = ILLEGAL_CHARACTERS_RE.sub("", value)
            # Escaped after the control characters go: "\x01=x" would reach the sheet as "=x".
            # (A formatted number never holds one, so a changed text is always typed text.)
            if not escaped or text != value:
                text = escape_formula(text)
            cell = WriteOnlyCell(ws, value=text)
            cell.data_type = "s"
        else:
            cell = WriteOnlyCell(ws, value=value)
        cells.append(cell)
    return cells
