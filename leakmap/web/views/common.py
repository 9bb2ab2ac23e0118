"""Helpers every view module shares: error mapping, count-free pagination, role checks."""

from __future__ import annotations

import datetime as dt
from functools import wraps

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

PAGE_SIZE = 50
# A list's .xlsx download stops here: beyond it the file takes minutes to build and Excel grows
# sluggish; the CSV download has no limit (it is streamed).
XLSX_MAX_ROWS = 100_000


def apply_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form fields it names (others on the form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class Page:
    """One page of a queryset, without COUNT(*): we fetch one row more than we show to know
    whether there is a next page, so a list of a million leads costs one bounded query."""

    def __init__(self, queryset, number: int, size: int = PAGE_SIZE):
        self.number = max(number, 1)
        offset = (self.number - 1) * size
        rows = list(queryset[offset : offset + size + 1])
        self.has_next = len(rows) > size
        self.object_list = rows[:size]
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1
        self.start_index = offset + 1 if self.object_list else 0
        self.end_index = offset + len(self.object_list)

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self):
        return len(self.object_list)


def without_page(request: HttpRequest) -> str:
    """The request's query string without its page number: the filters, for a download link."""
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def page_number(request: HttpRequest) -> int:
    try:
        return int(request.GET.get("page", "1"))
    except ValueError:
        return 1


def admin_required(view):
    """Settings pages: admins only; everyone else gets 403 (they are logged in, just not allowed)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            from django.contrib.auth.views import redirect_to_login

            return redirect_to_login(request.get_full_path())
        if not request.user.is_admin:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def settings_reader_required(view):
    """Settings pages a manager may read: the stages, the workflow and the assignment rules
    decide how their team is measured and fed. Reading is GET/HEAD; anything else, and every
    other role, is an admin's (403). Views show their edit controls to admins only."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            from django.contrib.auth.views import redirect_to_login

            return redirect_to_login(request.get_full_path())
        reading = request.method in ("GET", "HEAD")
        if not (request.user.is_admin or (reading and request.user.is_manager)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def local_day_bounds(day: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """Start and end (exclusive) of a calendar day in the install's time zone, as aware times."""
    tz = timezone.get_current_timezone()
    day = day or timezone.localdate()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return start, start + dt.timedelta(days=1)


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def filter_by_common_fields(qs, data: dict):
    """The filters lead and deal lists share: source, owner and the local created-date range.
    `qs` is already the user's visible set, so an owner filter can only narrow it."""
    if data.get("source"):
        qs = qs.filter(source=data["source"])
    if data.get("owner"):
        qs = qs.filter(owner=data["owner"])
    if data.get("created_from"):
        qs = qs.filter(created_at__gte=local_day_bounds(data["created_from"])[0])
    if data.get("created_to"):
        qs = qs.filter(created_at__lt=local_day_bounds(data["created_to"])[1])
    return qs


def list_download(kind: str, queryset, fmt: str) -> HttpResponse:
    """A list page's download: the rows of `queryset` (what the user may see, filtered as on
    the page) in the import columns of `kind`, so the file can be imported again."""
    from leakmap.exchange import exporters

    stem = f"leakmap-{kind}-{timezone.localdate().isoformat()}"
    if fmt == "csv":
        response = StreamingHttpResponse(
            exporters.csv_chunks(kind, queryset), content_type="text/csv; charset=utf-8"
        )
    elif fmt == "xlsx":
        n = queryset.count()
        if n > XLSX_MAX_ROWS:
            return HttpResponse(
                _(
                    "%(n)s rows are too many for an .xlsx download (at most %(max)s); "
                    "narrow the filters or download CSV."
                )
                % {"n": n, "max": XLSX_MAX_ROWS},
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        import io

        buffer = io.BytesIO()
        exporters.write_xlsx(kind, buffer, queryset)
        response = HttpResponse(
            buffer.getvalue(),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response
