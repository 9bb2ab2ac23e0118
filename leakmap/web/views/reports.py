"""Report pages over the analytics engine: one page per report, the weekly review and the
“where did the revenue go?” diagnosis.

Every figure comes from `leakmap.analytics.run_report(..., viewer=request.user)`; the page, its
chart (fed the JSON rows) and its CSV/XLSX downloads all show that one result, so nothing is
recomputed here or in the browser. A filter naming an owner or team the user may not see is a
404, exactly like a guessed record URL.
"""

from __future__ import annotations

import dataclasses
import io

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from leakmap.accounts.models import Team
from leakmap.accounts.selectors import visible_users
from leakmap.analytics import ReportFilters, ReportInputError, run_report
from leakmap.analytics.base import to_jsonable
from leakmap.analytics.diagnosis import metric_label
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
CATEGORY_LABELS = {
    "lead_volume": gettext_lazy("Too few leads"),
    "lead_quality": gettext_lazy("Leads that do not convert"),
    "lead_conversion": gettext_lazy("Leads not turned into deals"),
    "follow_up": gettext_lazy("Deals going cold mid-funnel"),
    "negotiation": gettext_lazy("Deals dying in negotiation"),
    "channel_mix": gettext_lazy("Spend on channels that do not pay"),
}
SEVERITY_LABELS = {
    "high": gettext_lazy("High"),
    "medium": gettext_lazy("Medium"),
    "low": gettext_lazy("Low"),
}


class ReportFilterForm(forms.Form):
    date_from = forms.DateField(label=gettext_lazy("From"), required=False, widget=DATE)
    date_to = forms.DateField(label=gettext_lazy("To"), required=False, widget=DATE)
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

    def __init__(self, *args, user, periods: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = visible_users(user)
        self.fields["owner"].empty_label = _("Everyone I can see")
        teams = Team.objects.all()
        if not user.is_admin:
            teams = teams.filter(pk=user.team_id) if user.team_id else teams.none()
        self.fields["team"].queryset = teams
        self.fields["team"].empty_label = _("All teams")
        self.fields["source"].empty_label = _("All sources")
        if not periods:
            del self.fields["date_from"], self.fields["date_to"]


def _filters(request, periods: bool = True) -> tuple[ReportFilterForm, ReportFilters | None]:
    form = ReportFilterForm(request.GET or None, user=request.user, periods=periods)
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
    return {"value": value, "kind": kind}


def _names() -> dict[str, dict[str, str]]:
    """Display names for the keys reports use (stage keys, usernames): presentation only; the
    downloads keep the contract's keys."""
    from leakmap.accounts.models import User
    from leakmap.crm.models import Stage

    return {
        "stage": {s.key: s.label for s in Stage.objects.filter(pipeline__is_default=True)},
        "owner": {u.username: str(u) for u in User.objects.only("username", "display_name")},
    }


def _display(key: str, value, names: dict):
    if key in names and isinstance(value, str):
        return names[key].get(value, value)
    return value


def _table(result, names: dict) -> dict:
    """The rows as the page shows them: columns from the report, cells with their kind."""
    columns = result.columns
    rows = []
    for row in result.rows:
        rows.append(
            [_cell(_display(c.key, getattr(row, c.key, None), names), c.kind) for c in columns]
        )
    return {"columns": columns, "rows": rows}


EXTRA_COLUMN_LABELS = {
    "key": gettext_lazy("Name"),
    "deals": gettext_lazy("Deals"),
    "amount": gettext_lazy("Amount"),
    "stage": gettext_lazy("Stage"),
    "reason": gettext_lazy("Lost reason"),
    "owner": gettext_lazy("Owner"),
    "leads_this_week": gettext_lazy("Leads this week"),
    "leads_last_week": gettext_lazy("Leads last week"),
    "deals_this_week": gettext_lazy("Deals this week"),
    "deals_last_week": gettext_lazy("Deals last week"),
    "won_amount_this_week": gettext_lazy("Won this week"),
    "won_amount_last_week": gettext_lazy("Won last week"),
    "probability": gettext_lazy("Configured probability"),
    "closed": gettext_lazy("Closed deals"),
    "won": gettext_lazy("Won"),
    "historical_win_rate": gettext_lazy("Actual win rate"),
    "brier_score": gettext_lazy("Brier score"),
}


def _extra_tables(result, names: dict | None = None) -> list[dict]:
    """Breakdowns the body carries besides its rows (by competitor, by stage, …)."""
    tables = []
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
        kinds = {k: _guess_kind(k) for k in keys}
        names = names or {}
        if key == "by_stage":
            lookup = {"key": names.get("stage", {})}
        else:
            lookup = names
        tables.append(
            {
                "key": key,
                "title": EXTRA_TITLES.get(key, key),
                "keys": keys,
                "columns": [EXTRA_COLUMN_LABELS.get(k, k) for k in keys],
                "numeric": [kinds[k] != "text" for k in keys],
                "rows": [
                    [_cell(_display(k, d.get(k), lookup), kinds[k]) for k in keys] for d in data
                ],
            }
        )
    return tables


EXTRA_TITLES = {
    "by_competitor": gettext_lazy("By competitor"),
    "by_industry": gettext_lazy("By industry"),
    "by_stage": gettext_lazy("By stage lost at"),
    "matrix": gettext_lazy("Leak map: stage lost at × reason"),
    "calibration": gettext_lazy("Stage probability against what happened"),
    "by_owner": gettext_lazy("By rep"),
    "top_lost_reasons": gettext_lazy("Top lost reasons this week"),
}


def _guess_kind(key: str) -> str:
    if "amount" in key or key in ("spend", "cost_per_lead", "cost_per_won"):
        return "money"
    if key.endswith("rate") or key.endswith("share"):
        return "rate"
    if key.endswith("days"):
        return "days"
    if key in ("deals", "won", "lost", "leads", "closed", "entered"):
        return "int"
    return "text"


def _chart_labels() -> dict:
    """Series names for the charts, translated on the server (the JS has no catalogue)."""
    return {
        "count": _("Count"),
        "amount": _("Amount"),
        "conversion": _("Conversion from previous step"),
        "won": _("Won"),
        "lost": _("Lost"),
        "open": _("Open"),
        "win_rate": _("Win rate"),
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
        "this_week": _("This week"),
        "last_week": _("Last week"),
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
        names = _names()
        # Stage keys in the breakdowns (the leak map's axis) shown by their labels.
        context["chart_labels"]["stages"] = names["stage"]
        context["table"] = _table(result, names)
        context["extra_tables"] = _extra_tables(result, names)
    return render(request, "web/reports/report.html", context, status=200 if result else 400)


@login_required
def report_export(request, name: str, fmt: str):
    """CSV or XLSX of exactly the rows the page shows for the same query string."""
    if name not in REPORT_PAGES and name not in ("weekly", "diagnosis"):
        raise Http404
    form, filters = _filters(request, periods=name != "weekly")
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
            sheet.append(xlsx_cells(sheet, [c["value"] for c in row]))
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
    form, filters = _filters(request, periods=False)
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
        names = _names()
        context["body"] = result.to_json()
        context["extra_tables"] = _extra_tables(result, names)
        context["week_start"] = result.extra["weeks"][0]["start"]
        context["stuck"] = [
            {
                "row": r,
                "stage": _display("stage", r.stage, names),
                "owner": _display("owner", r.owner, names),
            }
            for r in context["stuck"]
        ]
    return render(request, "web/reports/weekly.html", context, status=200 if result else 400)


COACHING_SHEETS_SHOWN = 12
FINDING_CARDS = 8


def _coaching(request, sheets: list, findings: list) -> dict:
    """The per-rep coaching sheets to lay out. A team's fit on the page; for a bigger scope
    (a whole company of hundreds of reps) the page shows the rep picked in the `coach` picker
    and the reps the findings name, biggest revenue at stake first — one sheet is what a
    one-on-one needs, and hundreds of them make a page nobody reads."""
    if len(sheets) <= COACHING_SHEETS_SHOWN:
        return {"coaching": sheets}
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
        "coaching": shown[:COACHING_SHEETS_SHOWN],
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
        findings = sorted(result.rows, key=lambda f: f.revenue_at_stake, reverse=True)
        context["findings"] = [
            {
                "f": f,
                "category_label": CATEGORY_LABELS.get(f.category, f.category),
                "severity_label": SEVERITY_LABELS.get(f.severity, SEVERITY_LABELS["low"]),
                "metric_label": metric_label(f.metric),
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
