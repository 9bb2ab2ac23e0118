"""The 400/403/404/500 pages: the app's look, the user's language, and a way back.

403 and 404 render with the request's context (the header and its menu). The 500 page is
rendered from a template that reads nothing but settings and static files: the failure may be
the database, so it neither touches the session nor the user."""

from __future__ import annotations

from django.http import HttpResponse
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import requires_csrf_token


def back_url(request) -> str:
    """The page the visitor came from, when it is on this site and not the failing page."""
    referer = request.META.get("HTTP_REFERER", "")
    if not referer or referer == request.build_absolute_uri():
        return ""
    if not url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    return referer


def _page(request, template: str, status: int) -> HttpResponse:
    body = loader.get_template(template).render({"back_url": back_url(request)}, request)
    return HttpResponse(body, status=status)


@requires_csrf_token
def bad_request(request, exception=None):
    return _page(request, "400.html", 400)


@requires_csrf_token
def permission_denied(request, exception=None):
    return _page(request, "403.html", 403)


@requires_csrf_token
def page_not_found(request, exception=None):
    return _page(request, "404.html", 404)


def server_error(request):
    # No request context: context processors would read the session and the user.
    try:
        back = back_url(request)
    except Exception:  # a malformed host is no reason to fail the error page itself
        back = ""
    body = loader.get_template("500.html").render({"back_url": back})
    return HttpResponse(body, status=500)
