"""Report pages over the analytics engine: one page per report, the weekly review and the
“where did the revenue go?” diagnosis.

Every figure comes from `leakmap.analytics.run_report(..., viewer=request.user)`; the page, its
chart (fed the JSON rows) and its CSV/XLSX downloads all show that one result, so nothing is
recomputed here or in the browser. A filter naming an owner or team the user may not see is a
404, exactly like a guessed record URL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from leakmap.accounts.models import Team
from leakmap.accounts.selectors import visible_users
from leakmap.analytics import ReportFilters, ReportInputError, labels, run_report
from leakmap.analytics.base import to_jsonable
from leakmap.analytics.diagnosis import metric_label
from leakmap.analytics.filters import (
    PERIOD_PRESETS,
    iso_week,
    iso_week_label,
    local_midnight,
    local_today,
    preset_period,
)
from leakmap.analytics.render import render_csv
from leakmap.crm.models import Source
from leakmap.web.forms import DATE, PersonChoiceField, QuickSelect

# Report pages in menu order: URL name → title.
# Rows a report page shows; the CSV/XLSX downloads have them all.
PAGE_ROWS = 200

REPORT_PAGES = {
    "funnel": gettext_lazy("Funnel"),
    "owners": gettext_lazy("Reps"),
    "sources": gettext_lazy("Sources and spend"),
    "lost-reasons": gettext_lazy("Lost reasons"),
    "stage-time": gettext_lazy("Time in stage"),
    "stuck": gettext_lazy("Stuck deals"),
    "cycle": gettext_lazy("Sales cycle"),
    "forecast": gettext_lazy("Forecast"),
}
CATEGORY_LABELS = labels.CATEGORIES
SEVERITY_LABELS = labels.SEVERITIES

PRESET_LABELS = {
    "": gettext_lazy("All time"),
    "this_month": gettext_lazy("This month"),
    "last_month": gettext_lazy("Last month"),
    "this_quarter": gettext_lazy("This quarter"),
    "last_quarter": gettext_lazy("Last quarter"),
    "year_to_date": gettext_lazy("Year to date"),
    "custom": gettext_lazy("Custom dates"),
}
assert set(PRESET_LABELS) == {"", "custom", *PERIOD_PRESETS}


class WeekInput(forms.TextInput):
    """<input type="week">: `YYYY-Www` whatever the page's language (a browser without a week
    picker shows a text box that takes the same)."""

    input_type = "week"


class ReportFilterForm(forms.Form):
    """The filters of every report page. Dates are local dates in the reporting time zone
    (settings.TIME_ZONE); a named period is worked out from the as-of date (today without one)
    and shown in the date fields, so the page says which days it covers."""

    preset = forms.ChoiceField(
        label=gettext_lazy("Period"),
        required=False,
        choices=list(PRESET_LABELS.items()),
        widget=QuickSelect(attrs={"data-period-preset": ""}),
    )
    date_from = forms.DateField(label=gettext_lazy("Start date"), required=False, widget=DATE)
    date_to = forms.DateField(label=gettext_lazy("End date"), required=False, widget=DATE)
    week = forms.CharField(
        label=gettext_lazy("Week"),
        required=False,
        widget=WeekInput(attrs={"placeholder": "2026-W01", "pattern": r"\d{4}-W\d{2}"}),
    )
    as_of = forms.DateField(label=gettext_lazy("As of"), required=False, widget=DATE)
    owner = PersonChoiceField(
        queryset=None, to_field_name="username", required=False, label=gettext_lazy("Owner")
    )
    team = forms.ModelChoiceField(
        queryset=None,
        to_field_name="name",
        required=False,
        label=gettext_lazy("Team"),
        widget=QuickSelect,
    )
    source = forms.ModelChoiceField(
        queryset=Source.objects.all(),
        to_field_name="name",
        required=False,
        label=gettext_lazy("Source"),
        widget=QuickSelect,
    )

    def __init__(self, *args, user, periods: bool = True, weekly: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_zone = settings.TIME_ZONE
        self.fields["owner"].queryset = visible_users(user)
        self.fields["owner"].empty_label = _("Everyone I can see")
        teams = Team.objects.all()
        if not user.is_admin:
            teams = teams.filter(pk=user.team_id) if user.team_id else teams.none()
        self.fields["team"].queryset = teams
        self.fields["team"].empty_label = _("All teams")
        self.fields["source"].empty_label = _("All sources")
        self.fields["as_of"].help_text = _("End of that day; empty: now")
        if not periods:
            del self.fields["preset"], self.fields["date_from"], self.fields["date_to"]
        if not weekly:
            del self.fields["week"]

    def clean_week(self):
        value = self.cleaned_data.get("week") or ""
        if not value:
            return None
        try:
            return iso_week(value)
        except ValueError:
            raise forms.ValidationError(
                _("Enter a week as year and week number, e.g. 2026-W05.")
            ) from None

    def clean_as_of(self):
        day = self.cleaned_data.get("as_of")
        if day is not None and day > local_today():
            raise forms.ValidationError(
                _("The as-of date %(day)s is in the future; choose today or earlier.")
                % {"day": day.isoformat()}
            )
        return day

    def clean(self):
        data = super().clean()
        preset = data.get("preset")
        if preset in PERIOD_PRESETS:
            day = data.get("as_of") or local_today()
            data["date_from"], data["date_to"] = preset_period(preset, day)
            # Shown in the date fields, so the page says which days the period covers.
            shown = self.data.copy()
            shown["date_from"] = data["date_from"].isoformat()
            shown["date_to"] = data["date_to"].isoformat()
            self.data = shown
        elif "preset" in self.fields and (data.get("date_from") or data.get("date_to")):
            data["preset"] = "custom"
            if self.data.get("preset") != "custom":
                shown = self.data.copy()
                shown["preset"] = "custom"
                self.data = shown
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error(
                "date_to",
                _("The end date %(to)s is before the start date %(from)s.")
                % {"to": end.isoformat(), "from": start.isoformat()},
            )
        return data

    def as_of_moment(self) -> dt.datetime | None:
        """The end of the as-of day in the reporting time zone; None (now) for today or none."""
        day = self.cleaned_data.get("as_of")
        if day is None or day >= local_today():
            return None
        return local_midnight(day + dt.timedelta(days=1)) - dt.timedelta(microseconds=1)


def _filters(
    request, periods: bool = True, weekly: bool = False
) -> tuple[ReportFilterForm, ReportFilters | None]:
    form = ReportFilterForm(request.GET or None, user=request.user, periods=periods, weekly=weekly)
    if not form.is_bound:
        return form, ReportFilters(viewer=request.user)
    if not form.is_valid():
        # An owner or team outside what the user may see (or that does not exist) is not
        # something to explain: it is a guessed URL.
        if {"owner", "team", "source"} & set(form.errors):
            raise Http404
        return form, None
    data = form.cleaned_data
    return form, ReportFilters(
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
        as_of=form.as_of_moment(),
        week=data.get("week"),
        owner=data["owner"].username if data["owner"] else None,
        team=data["team"].name if data["team"] else None,
        source=data["source"].name if data["source"] else None,
        viewer=request.user,
    )


def _run(name: str, filters: ReportFilters, form: ReportFilterForm):
    try:
        return run_report(name, filters)
    except ReportInputError as exc:
        form.add_error(None, str(exc))
        return None


def _cell(value, kind: str):
    if kind == "score" and value is not None:
        # Formatted here: the cell filter knows money, rates, counts and days.
        value, kind = f"{float(value):.{labels.SCORE_PLACES}f}", "num"
    return {"value": value, "kind": kind}


def _table(result, names: dict) -> dict:
    """The rows as the page shows them: columns from the report, cells with their kind, codes
    as their labels (analytics.labels)."""
    columns = result.columns
    rows = []
    for row in result.rows:
        rows.append(
            [
                _cell(
                    labels.display(result.report, c.key, getattr(row, c.key, None), names), c.kind
                )
                for c in columns
            ]
        )
    return {"columns": columns, "rows": rows}


def _extra_tables(result, names: dict | None = None) -> list[dict]:
    """Breakdowns the body carries besides its rows (by competitor, by stage, …)."""
    tables = []
    names = names or {}
    for key, value in result.extra.items():
        if not isinstance(value, list) or not value or key in ("coaching", "notes", "weeks"):
            continue
        first = value[0]
        if not (dataclasses.is_dataclass(first) or isinstance(first, dict)):
            continue
        data = [to_jsonable(v) for v in value]
        if any(isinstance(v, (dict, list)) for v in data[0].values()):
            continue
        keys = list(data[0].keys())
        kinds = {k: labels.kind_of(k) for k in keys}
        # by_stage's key is a stage key; every other breakdown's key is a name already.
        lookup = {"key": names.get("stage", {})} if key == "by_stage" else names

        def shown(k, v, lookup=lookup):
            if k == "key":
                return lookup.get("key", {}).get(v, v) if isinstance(v, str) else v
            return labels.display(result.report, k, v, lookup)

        tables.append(
            {
                "key": key,
                "title": labels.table_title(key),
                "keys": keys,
                "columns": [labels.column_label(key, k) for k in keys],
                "numeric": [kinds[k] != "text" for k in keys],
                "rows": [[_cell(shown(k, d.get(k)), kinds[k]) for k in keys] for d in data],
            }
        )
    return tables


def _chart_labels() -> dict:
    """Series names for the charts, translated on the server (the JS has no catalogue)."""
    return {
        "count": _("Count"),
        "amount": _("Amount"),
        "conversion": _("Conversion from previous step"),
        "won": _("Won"),
        "lost": _("Lost"),
        "open": _("Open"),
        "win_rate": str(labels.DEAL_WIN_RATE),
        "won_amount": _("Won amount"),
        "spend": _("Spend"),
        "cost_per_won": _("Cost per won deal"),
        "share": _("Share of lost amount"),
        "mean": _("Mean days"),
        "median": _("Median days"),
        "p90": _("P90 days"),
        "sla": _("SLA days"),
        "pipeline": _("Pipeline amount"),
        "weighted": _("Weighted amount"),
        "days_in_stage": _("Days in stage"),
        "this_week": str(labels.WEEK),
        "last_week": str(labels.WEEK_BEFORE),
        "value": _("This scope"),
        "benchmark": _("Benchmark"),
        "currency": "",
    }


@login_required
def report_index(request):
    return render(request, "web/reports/index.html", {"pages": REPORT_PAGES})


@login_required
def report_page(request, name: str):
    if name not in REPORT_PAGES:
        raise Http404
    form, filters = _filters(request)
    if filters:
        # Only the rows the page shows (and their count), from a report that makes long lists
        # (every stuck deal of a company: tens of thousands); the downloads have all of them.
        filters = dataclasses.replace(filters, row_limit=PAGE_ROWS)
    result = _run(name, filters, form) if filters else None
    context = {
        "name": name,
        "title": REPORT_PAGES[name],
        "pages": REPORT_PAGES,
        "form": form,
        "result": result,
        "query": request.GET.urlencode(),
        "chart_labels": _chart_labels(),
    }
    if result is not None:
        all_rows = result.total_rows or len(result.rows)
        if all_rows > PAGE_ROWS:
            # A long list is cut for the page and its chart; the downloads keep every row, and
            # the page says so.
            context["shown_rows"], context["all_rows"] = PAGE_ROWS, all_rows
            result = dataclasses.replace(result, rows=result.rows[:PAGE_ROWS])
            context["result"] = result
        context["body"] = result.to_json()
        if context["body"].get("spend_basis") == "allocated":
            # A narrowed scope's spend is its share of the company's (CONTRACT §4).
            context["chart_labels"]["spend"] = _("Spend (allocated)")
        names = labels.display_names()
        # Stage keys in the breakdowns (the leak map's axis) shown by their labels.
        context["chart_labels"]["stages"] = names["stage"]
        # Owners' names for the charts' axes: only the owners of the rows shown.
        context["chart_labels"]["owners"] = {
            row.owner: names["owner"].get(row.owner, row.owner)
            for row in result.rows
            if isinstance(getattr(row, "owner", None), str)
        }
        context["table"] = _table(result, names)
        context["extra_tables"] = _extra_tables(result, names)
        if result.extra.get("brier_score") is not None:
            context["brier_score"] = _cell(result.extra["brier_score"], "score")["value"]
    return render(request, "web/reports/report.html", context, status=200 if result else 400)


@login_required
def report_export(request, name: str, fmt: str):
    """CSV or XLSX of exactly the rows the page shows for the same query string."""
    if name not in REPORT_PAGES and name not in ("weekly", "diagnosis"):
        raise Http404
    form, filters = _filters(request, periods=name != "weekly", weekly=name == "weekly")
    result = _run(name, filters, form) if filters else None
    if result is None:
        errors = "; ".join(e for errs in form.errors.values() for e in errs)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    stem = f"leakmap-{name}"
    if fmt == "csv":
        # A BOM so Excel opens the Chinese labels as UTF-8.
        response = HttpResponse(
            "\ufeff" + render_csv(result), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
        return response
    if fmt == "xlsx":
        response = HttpResponse(
            _xlsx(result),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        response["Content-Disposition"] = f'attachment; filename="{stem}.xlsx"'
        return response
    raise Http404


def _xlsx(result) -> bytes:
    """The same header and rows as the CSV (one sheet), then each breakdown on its own sheet."""
    import csv

    from openpyxl import Workbook

    from leakmap.exchange.cells import xlsx_cells

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(result.report[:31])
    # render_csv has escaped text already; xlsx_cells leaves a leading "'" as it is and keeps
    # the cell text rather than a formula.
    for line in csv.reader(io.StringIO(render_csv(result))):
        ws.append(xlsx_cells(ws, [_number(v) for v in line]))
    for table in _extra_tables(result):
        sheet = wb.create_sheet(table["key"][:31])
        sheet.append(xlsx_cells(sheet, table["keys"]))
        for row in table["rows"]:
            # A score is text on the page (rounded) and a number in the sheet.
            sheet.append(
                xlsx_cells(
                    sheet, [float(c["value"]) if c["kind"] == "num" else c["value"] for c in row]
                )
            )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _number(text: str):
    """CSV cells back to numbers where they are numbers, so the sheet can sum them."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@login_required
def weekly(request):
    form, filters = _filters(request, periods=False, weekly=True)
    result = _run("weekly", filters, form) if filters else None
    stuck = _run("stuck", dataclasses.replace(filters, row_limit=15), form) if filters else None
    context = {
        "form": form,
        "result": result,
        "stuck": stuck.rows[:15] if stuck else [],
        "query": request.GET.urlencode(),
        "chart_labels": _chart_labels(),
        "pages": REPORT_PAGES,
    }
    if result is not None:
        names = labels.display_names()
        context["body"] = result.to_json()
        context["extra_tables"] = _extra_tables(result, names)
        context.update(_week_links(request, result))
        # The picker shows the week on the page, the default one included.
        if form.is_bound:
            form.data = form.data.copy()
            form.data["week"] = result.extra["week"]
        else:
            form.initial["week"] = result.extra["week"]
        context["stuck"] = [
            {
                "row": r,
                "stage": labels.display("stuck", "stage", r.stage, names),
                "owner": labels.display("stuck", "owner", r.owner, names),
                "days_since_follow_up": labels.display(
                    "stuck", "days_since_follow_up", r.days_since_follow_up, names
                ),
            }
            for r in context["stuck"]
        ]
    return render(request, "web/reports/weekly.html", context, status=200 if result else 400)


def _week_links(request, result) -> dict:
    """The reviewed week as the page names it, and the links to the weeks either side (none
    after the week the clock is in)."""
    monday = iso_week(result.extra["week"])
    weeks = result.extra["weeks"]

    def link(day: dt.date) -> str:
        query = request.GET.copy()
        query["week"] = iso_week_label(day)
        return "?" + query.urlencode()

    later = monday + dt.timedelta(weeks=1)
    return {
        "week_label": result.extra["week"],
        "week_start": monday,
        "week_end": dt.date.fromisoformat(result.period["to"]),
        "week_complete": weeks[0]["complete"],
        "week_prev": link(monday - dt.timedelta(weeks=1)),
        "week_next": link(later) if local_midnight(later) <= result.as_of else None,
    }


COACHING_SHEETS_SHOWN = 12
FINDING_CARDS = 8


def _sheet(sheet, viewer) -> dict:
    """A coaching sheet as the page lays it out: each step's rate with its sample beside the
    rest of the team's, the rep named in the third person unless the reader is the rep."""
    return {
        "sheet": sheet,
        "is_reader": sheet.owner == viewer.username,
        "steps": [
            {
                "label": labels.COACHING_STEPS.get(s.stage, s.stage),
                "rep": labels.rate_with_sample(s.rate, s.reached, s.base),
                "team": labels.rate_with_sample(s.team_rate, s.team_reached, s.team_base),
                "behind": s.rate is not None and s.team_rate is not None and s.rate < s.team_rate,
            }
            for s in sheet.stages
        ],
    }


def _coaching(request, sheets: list, findings: list) -> dict:
    """The per-rep coaching sheets to lay out. A team's fit on the page; for a bigger scope
    (a whole company of hundreds of reps) the page shows the rep picked in the `coach` picker
    and the reps the findings name, biggest revenue at stake first — one sheet is what a
    one-on-one needs, and hundreds of them make a page nobody reads."""
    if len(sheets) <= COACHING_SHEETS_SHOWN:
        return {"coaching": [_sheet(s, request.user) for s in sheets]}
    by_owner = {s.owner: s for s in sheets}
    chosen = request.GET.get("coach", "")
    wanted = [chosen] + [f.scope.get("key") for f in findings if f.scope.get("type") == "owner"]
    shown = []
    for owner in wanted:
        sheet = by_owner.get(owner)
        if sheet is not None and sheet not in shown:
            shown.append(sheet)
    picker = QuickSelect(
        choices=[("", "—")] + sorted(((s.owner, s.name) for s in sheets), key=lambda c: c[1])
    ).render("coach", chosen, attrs={"id": "coach"})
    return {
        "coaching": [_sheet(s, request.user) for s in shown[:COACHING_SHEETS_SHOWN]],
        "coaching_total": len(sheets),
        "coach_picker": picker,
        "coach_hidden": [(k, v) for k, v in request.GET.items() if k != "coach"],
    }


@login_required
def diagnosis(request):
    form, filters = _filters(request)
    result = _run("diagnosis", filters, form) if filters else None
    context = {
        "form": form,
        "result": result,
        "query": request.GET.urlencode(),
        "chart_labels": _chart_labels(),
        "pages": REPORT_PAGES,
    }
    if result is not None:
        names = labels.display_names()
        findings = sorted(result.rows, key=lambda f: f.revenue_at_stake, reverse=True)
        context["findings"] = [
            {
                "f": f,
                "category_label": CATEGORY_LABELS.get(f.category, f.category),
                "severity_label": SEVERITY_LABELS.get(f.severity, SEVERITY_LABELS["low"]),
                "metric_label": metric_label(f.metric),
                "scope_label": labels.scope_label(f.scope, names),
                "is_rate": f.metric.endswith(("_rate", "_share")),
                "chart": to_jsonable(
                    {"metric": f.metric, "value": f.value, "benchmark": f.benchmark}
                ),
            }
            for f in findings
        ]
        # The page's charts read the findings; the sheets are laid out below (every one of
        # them stays in the report's JSON, for the API and `leakmap report`).
        context["body"] = dataclasses.replace(
            result, extra={k: v for k, v in result.extra.items() if k != "coaching"}
        ).to_json()
        # The biggest leaks as cards with their chart and actions; the rest in one table.
        context["more_findings"] = context["findings"][FINDING_CARDS:]
        context["findings"] = context["findings"][:FINDING_CARDS]
        context["findings_total"] = len(findings)
        context.update(_coaching(request, result.extra.get("coaching", []), findings))
        context["notes"] = result.extra.get("notes", [])
        # The biggest single leak: findings overlap, so their sum would count money twice.
        context["revenue_at_stake"] = findings[0].revenue_at_stake if findings else None
        context["won_amount"] = result.extra.get("won_amount")
    return render(request, "web/reports/diagnosis.html", context, status=200 if result else 400)
