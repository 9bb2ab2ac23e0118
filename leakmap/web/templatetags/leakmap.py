"""Formatting for the web pages: money, numbers, rates and durations per language, and an
include that tolerates a template another app has not shipped yet."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from html import escape

from django import template
from django.conf import settings
from django.template import TemplateDoesNotExist
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

register = template.Library()

SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}


def _is_zh() -> bool:
    return (translation.get_language() or settings.LANGUAGE_CODE).startswith("zh")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@register.filter
def money(value, places: int = 2) -> str:
    """¥1,234,567.00 in Chinese; CNY 1,234,567.00 in English (the code is unambiguous there)."""
    amount = _decimal(value)
    if amount is None:
        return "–"
    currency = settings.LEAKMAP_CURRENCY
    text = f"{amount:,.{int(places)}f}"
    if _is_zh():
        return f"{SYMBOLS.get(currency, currency + ' ')}{text}"
    return f"{currency} {text}"


@register.filter
def money_short(value) -> str:
    """Compact amounts for kanban headers and cards: ¥12.5万 / CNY 125K."""
    amount = _decimal(value)
    if amount is None:
        return "–"
    currency = settings.LEAKMAP_CURRENCY
    if _is_zh():
        symbol = SYMBOLS.get(currency, currency + " ")
        if abs(amount) >= 100_000_000:
            return f"{symbol}{amount / 100_000_000:,.2f}亿"
        if abs(amount) >= 10_000:
            return f"{symbol}{amount / 10_000:,.1f}万"
        return f"{symbol}{amount:,.0f}"
    if abs(amount) >= 1_000_000:
        return f"{currency} {amount / 1_000_000:,.2f}M"
    if abs(amount) >= 1_000:
        return f"{currency} {amount / 1_000:,.1f}K"
    return f"{currency} {amount:,.0f}"


@register.filter
def num(value, places: int = 0) -> str:
    number = _decimal(value)
    if number is None:
        return "–"
    return f"{number:,.{int(places)}f}"


@register.filter
def pct(value, places: int = 1) -> str:
    """A rate in [0, 1] as a percentage."""
    number = _decimal(value)
    if number is None:
        return "–"
    return f"{number * 100:.{int(places)}f}%"


@register.filter
def table_cell(cell) -> str:
    """One report table cell as its <td>, formatted by its column's kind (numbers right-aligned).
    A filter, not an included template and tags per cell: the owners table of 250 reps has
    2,250 cells, and an include each cost ~100 ms of the page."""
    if isinstance(cell, dict):  # the body's extra tables hold their cells as dicts
        value, kind = cell["value"], cell["kind"]
    else:
        value, kind = cell.value, cell.kind
    if value is None:
        text = "–"
    elif kind == "money":
        text = money(value)
    elif kind == "rate":
        text = pct(value)
    elif kind == "int":
        text = num(value)
    elif kind == "days":
        text = num(value, 1)
    elif kind == "map":
        text = " ".join(
            f'<span class="badge">{escape(str(k))} {escape(str(v))}</span>'
            for k, v in value.items()
        )
        return mark_safe(f"<td>{text}</td>")
    else:
        text = str(value)
    # html.escape is what Django's escape() does, without its lazy-string wrapper per call.
    td = "<td>" if kind == "text" else '<td class="num">'
    return mark_safe(f"{td}{escape(text)}</td>")


@register.filter
def days_since(value, now=None) -> str:
    """Whole days between `value` and now, as “3 天” / “3 d”."""
    if value is None:
        return "–"
    now = now or dt.datetime.now(dt.UTC)
    days = (now - value).total_seconds() / 86400
    return _("%(n)s d") % {"n": f"{days:.0f}"}


@register.filter
def duration_days(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, dt.timedelta):
        value = value.total_seconds() / 86400
    return _("%(n)s d") % {"n": f"{float(value):.1f}"}


@register.filter
def field_value(form, name):
    return form[name]


@register.simple_tag(takes_context=True)
def optional_include(context, template_name: str) -> str:
    """Render `template_name` with the current context, or nothing if no app provides it yet.

    The automation app ships the notification bell; the layout must still render before it lands.
    """
    try:
        tpl = context.template.engine.get_template(template_name)
    except TemplateDoesNotExist:
        return ""
    # Render in the current context: a fresh RequestContext would run every context processor
    # (and their queries) a second time.
    return tpl.render(context)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (pagination, sorting)."""
    request = context["request"]
    params = request.GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def reports_available() -> bool:
    """True once the analytics engine (run_report) is installed; the report links show then."""
    try:
        from leakmap import analytics
    except ImportError:  # pragma: no cover
        return False
    return hasattr(analytics, "run_report")


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str, css: str = "") -> str:
    """A list's column header that sorts by `key`: a click sorts ascending, a second click on
    the sorted column descending; the arrow shows the current direction. The page goes back
    to the first; the filters stay."""
    sort = context["sort"]
    active = sort.key == key
    next_param = key if not active or sort.descending else f"-{key}"
    aria = ("descending" if sort.descending else "ascending") if active else "none"
    arrow = ("▼" if sort.descending else "▲") if active else ""
    href = query_with(context, sort=next_param, page=None)
    return format_html(
        '<th class="{}" aria-sort="{}"><a class="sort-link{}" href="{}">{}'
        '<span class="sort-arrow" aria-hidden="true">{}</span></a></th>',
        css,
        aria,
        " is-sorted" if active else "",
        href,
        label,
        arrow,
    )
