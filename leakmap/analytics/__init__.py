"""Funnel analytics: every report of CONTRACT §5, computed by SQL aggregation in the database.

    from leakmap.analytics import ReportFilters, run_report
    result = run_report("funnel", ReportFilters(date_from=date(2026, 1, 1), viewer=request.user))
    result.rows        # typed dataclass rows
    result.to_json()   # the CONTRACT §5 body

Django imports this package before models are ready, so the names below are loaded lazily
(PEP 562) and the report modules on first use. A new report registers itself with
`@register("name")` from `leakmap.analytics.base` and is listed in `Registry.MODULES`.
"""

from __future__ import annotations

__all__ = [
    "REPORTS",
    "ReportFilters",
    "ReportInputError",
    "ReportResult",
    "diagnosis_summary",
    "register",
    "run_report",
]


def __getattr__(name: str):
    if name in ("REPORTS", "ReportResult", "register", "run_report"):
        from leakmap.analytics import base

        return getattr(base, name)
    if name == "diagnosis_summary":
        from leakmap.analytics.diagnosis import diagnosis_summary

        return diagnosis_summary
    if name in ("ReportFilters", "ReportInputError"):
        from leakmap.analytics import filters

        return getattr(filters, name)
    raise AttributeError(name)
