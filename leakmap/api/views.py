"""Web pages of the API app: the user's token page and the public web-to-lead endpoint."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from leakmap.api import tokens as token_services
from leakmap.api import webforms
from leakmap.api.models import ApiToken, WebForm

# --- Tokens ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    """List the caller's tokens; POST creates one and shows its secret this one time."""
    created = None
    error = ""
    if request.method == "POST":
        try:
            _token, created = token_services.token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                read_only=request.POST.get("access") == "read",
            )
        except ValidationError as exc:
            error = " ".join(exc.message_dict.get("name", exc.messages))
    rows = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
    return render(
        request,
        "api/tokens.html",
        {"tokens": rows, "created": created, "error": error},
        status=400 if error else 200,
    )


@login_required
@require_POST
def token_revoke(request, token_id: int):
    # Only the caller's own tokens exist for them: anyone else's is a 404.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token_services.token_revoke(token=token, by=request.user)
    messages.success(request, _("Token “%(n)s” revoked.") % {"n": token.name})
    return redirect("api-tokens")


# --- Web-to-lead ----------------------------------------------------------------------------


def _cors(response: HttpResponse, form: WebForm, origin: str | None) -> HttpResponse:
    # Only origins listed on the form may read the response from a script.
    if origin and origin.rstrip("/") in form.origins:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _client_ip(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is set by the client unless a trusted proxy rewrites it.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def render_form(request, form: WebForm, *, errors=None, values=None, status=200):
    values = values or {}
    context = webforms.form_context(
        form,
        action=request.build_absolute_uri(request.get_full_path()),
        values=values,
        errors=errors,
        utm={k: values.get(k) or request.GET.get(k, "") for k in webforms.UTM_KEYS},
        referrer=values.get("referrer") or request.headers.get("Referer", ""),
    )
    return render(request, "api/web_form.html", context, status=status)


@csrf_exempt
@xframe_options_exempt
@require_http_methods(["GET", "POST", "OPTIONS"])
def web_form(request, slug: str):
    """The hosted form (GET), its CORS preflight (OPTIONS) and its public endpoint (POST)."""
    form = get_object_or_404(WebForm, slug=slug, is_active=True)
    origin = request.headers.get("Origin")

    if request.method == "OPTIONS":
        if not origin or origin.rstrip("/") not in form.origins:
            return HttpResponse(status=403)
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response["Access-Control-Max-Age"] = "600"
        return _cors(response, form, origin)

    if request.method == "GET":
        return render_form(request, form)

    def reply(status: int, message: str, *, errors=None, retry_after=None) -> HttpResponse:
        if _wants_json(request):
            detail = [{"field": f, "message": m} for f, m in (errors or {}).items()] or [
                {"field": None, "message": message}
            ]
            response = JsonResponse({"detail": detail}, status=status)
        elif errors:
            response = render_form(request, form, errors=errors, values=request.POST, status=status)
        else:
            response = render(
                request,
                "api/web_form_message.html",
                {"form": form, "message": message},
                status=status,
            )
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return _cors(response, form, origin)

    try:
        webforms.check_rate(_client_ip(request))
        webforms.check_bot(form, request.POST)
        outcome = webforms.submit(
            form, request.POST, query=request.GET, referer_header=request.headers.get("Referer", "")
        )
    except webforms.Rejected as exc:
        return reply(exc.status, exc.message, retry_after=exc.retry_after)
    except ValidationError as exc:
        errors = {f: " ".join(m) for f, m in exc.message_dict.items()}
        return reply(400, _("Please correct the form."), errors=errors)

    if _wants_json(request):
        return _cors(
            JsonResponse({"ok": True}, status=201 if outcome.created else 200), form, origin
        )
    if form.redirect_url:
        return _cors(HttpResponseRedirect(form.redirect_url, status=303), form, origin)
    return _cors(
        render(
            request,
            "api/web_form_message.html",
            {"form": form, "message": form.thank_you_text or _("Thank you! We will be in touch.")},
        ),
        form,
        origin,
    )
