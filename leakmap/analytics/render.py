"""One renderer for every report: a rich table (with totals where they add up), JSON (the
CONTRACT §5 body) or CSV (the rows, with contract column names; nested maps flattened as
`reached:KEY`). Labels come from gettext, so zh-hans and en both work."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.utils.translation import gettext as _

from leakmap.analytics import labels
from leakmap.analytics.base import Column, ReportResult, to_jsonable
from leakmap.analytics.filters import local_tz
from leakmap.exchange.cells import escape_formula

FORMATS = ("table", "json", "csv")
CURRENCY_SIGNS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def render(result: ReportResult, fmt: str = "table", width: int | None = None) -> str:
    if fmt == "json":
        # orjson writes the values json.dumps(indent=2, ensure_ascii=False) would, in C (a tiny
        # float may be spelled 0.00001 instead of 1e-05); Python's own encoder runs in pure
        # Python once an indent is asked for, and for a long body (every stuck deal) that cost
        # more than computing the report.
        return orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return render_csv(result)
    if fmt == "table":
        return render_table(result, width=width)
    raise ValueError(fmt)


def _flat(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = to_jsonable(row)
    for key, value in data.items():
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"{key}:{k}"] = v
        else:
            out[key] = value
    return out


def render_csv(result: ReportResult) -> str:
    buf = io.StringIO()
    flat = [_flat(r) for r in result.rows]
    if result.rows:
        header: list[str] = []
        for row in flat:
            for key in row:
                if key not in header:
                    header.append(key)
    else:
        header = [c.key for c in result.columns]
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in flat:
        # Names (owners, sources, lost reasons) are user-typed text: escape_formula keeps one
        # starting with "=" from running as a formula in Excel; numbers are left as they are.
        writer.writerow({k: "" if v is None else escape_formula(v) for k, v in row.items()})
    return buf.getvalue()


def fmt_value(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "money":
        sign = CURRENCY_SIGNS.get(settings.LEAKMAP_CURRENCY, "")
        return f"{sign}{Decimal(value):,.2f}"
    if kind == "rate":
        return f"{float(value) * 100:.1f}%"
    if kind == "days":
        return f"{float(value):.1f}"
    if kind == "score":
        return f"{float(value):.{labels.SCORE_PLACES}f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "map":
        return " ".join(f"{k}={v}" for k, v in value.items())
    if kind == "nested":
        return _compact(value)
    return str(value)


def _compact(value: Any) -> str:
    """Nested lists and maps in one readable cell: `a=1 b=25.0%; a=2 …`."""
    if isinstance(value, dict):
        return " ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_compact(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return "–" if value is None else str(value)


def _table(
    title: str,
    columns: list[Column],
    rows: list[Any],
    totals: bool = True,
    shown: Any = None,
):
    """`shown(key, value)`: the value as a reader sees it (analytics.labels.display)."""
    from rich.table import Table

    shown = shown or (lambda _key, value: value)
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col.label, justify="left" if col.kind in ("text", "map") else "right")
    for row in rows:
        get = row.get if isinstance(row, dict) else lambda k, r=row: getattr(r, k)
        table.add_row(*[fmt_value(shown(c.key, get(c.key)), c.kind) for c in columns])
    if totals and rows and any(c.total for c in columns):
        cells = []
        for i, c in enumerate(columns):
            if c.total:
                values = [
                    (r.get(c.key) if isinstance(r, dict) else getattr(r, c.key)) for r in rows
                ]
                cells.append(fmt_value(sum((v for v in values if v is not None), 0), c.kind))
            else:
                cells.append(_("Total") if i == 0 else "")
        table.add_section()
        table.add_row(*cells, style="bold")
    return table


def _extra_columns(table: str, value: list) -> list[Column]:
    """A breakdown's columns with the pages' headers and formats (analytics.labels)."""
    first = to_jsonable(value[0])

    def kind(key: str, sample: Any) -> str:
        if isinstance(sample, list | dict):
            return "nested"
        named = labels.kind_of(key)
        if named == "text" and isinstance(sample, float):
            return "days"
        return named

    return [
        Column(k, labels.column_label(table, k), kind(k, v), total=k in ("deals", "amount"))
        for k, v in first.items()
    ]


# Body keys the table's own labels already say (the sources' spend header reads "Spend
# (allocated)" when spend_basis is "allocated"; the weekly header names its weeks): not
# printed again.
SAID_BY_LABELS = frozenset({"spend_basis", "weeks"})


def _coaching_tables(console, sheets: list, names: dict) -> None:
    """Each coaching sheet as the diagnosis page lays it out: a step's rate with its sample
    beside the rest of the team's."""
    from rich.table import Table

    for sheet in sheets:
        title = _("%(name)s · %(leads)s leads · %(deals)s deals · %(won)s won") % {
            "name": sheet.name,
            "leads": f"{sheet.leads:,}",
            "deals": f"{sheet.deals:,}",
            "won": f"{sheet.won:,}",
        }
        table = Table(title=title)
        table.add_column(_("Step"))
        table.add_column(sheet.name, justify="right")
        table.add_column(_("Rest of team"), justify="right")
        for s in sheet.stages:
            table.add_row(
                str(labels.COACHING_STEPS.get(s.stage, s.stage)),
                labels.rate_with_sample(s.rate, s.reached, s.base),
                labels.rate_with_sample(s.team_rate, s.team_reached, s.team_base),
            )
        console.print(table)
        mine = fmt_value(sheet.follow_ups_per_deal, "days")
        if sheet.best_peer:
            peer = _("most in the team: %(peer)s, %(n)s (over %(deals)s deals)") % {
                "peer": sheet.best_peer,
                "n": fmt_value(sheet.best_peer_follow_ups_per_deal, "days"),
                "deals": sheet.best_peer_deals,
            }
        else:
            peer = _("no teammate with enough deals follows up more often")
        console.print(f"{_('Follow-ups per deal')}: {mine} · {peer}")


def render_table(result: ReportResult, width: int | None = None) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width or 160, color_system=None)
    period = result.period
    as_of = result.as_of.astimezone(local_tz())
    as_of_label = _("as of")
    console.print(
        f"{result.title or result.report} · {as_of_label} {as_of:%Y-%m-%d %H:%M} ({as_of.tzinfo}) · "
        f"{period.get('from') or '…'} → {period.get('to') or '…'}"
    )
    names = labels.display_names()

    def shown(key: str, value: Any) -> Any:
        return labels.display(result.report, key, value, names)

    console.print(_table("", result.columns, result.rows, shown=shown))
    for key, value in result.extra.items():
        if key in SAID_BY_LABELS:
            continue
        if key == "coaching":
            _coaching_tables(console, value, names)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            for line in value:
                console.print(line)
        elif isinstance(value, list) and value:
            rows = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
            lookup = {"key": names["stage"]} if key == "by_stage" else names

            def shown_extra(k: str, v: Any, lookup: dict = lookup) -> Any:
                if k == "key":
                    return lookup.get("key", {}).get(v, v) if isinstance(v, str) else v
                return labels.display(result.report, k, v, lookup)

            console.print(
                _table(labels.table_title(key), _extra_columns(key, value), rows, shown=shown_extra)
            )
        elif isinstance(value, dict):
            label = labels.SCALAR_LABELS.get(key, key)
            console.print(f"{label}: " + json.dumps(to_jsonable(value), ensure_ascii=False))
        elif not isinstance(value, list):
            label = labels.SCALAR_LABELS.get(key, key)
            kind = labels.kind_of(key)
            if kind == "days" and isinstance(value, int):
                kind = "int"
            text = fmt_value(value, kind) if kind != "text" else str(to_jsonable(value))
            console.print(f"{label}: {text}")
    return console.file.getvalue()
