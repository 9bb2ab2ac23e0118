"""Content-Security-Policy on every response, and the per-request nonce behind it.

Every script the app runs is a file under static/ (htmx, ECharts and Sortable are vendored
there), so scripts are limited to the app's own origin: an injected `<script>` or `onclick=`
does not run. A template that truly needs an inline script writes
`<script nonce="{{ csp_nonce }}">`; the nonce is made only for responses that use it.

Styles: stylesheets come from the app's origin only, but `style="…"` attributes are allowed
(`style-src-attr`): templates and ECharts' tooltips use them, and an attribute cannot load a
resource from elsewhere because img-src and font-src stay on 'self'. A `<style>` element is
refused, which is why htmx's own indicator styles are switched off in base.html.

A page that runs a vendored library which injects `<style>` elements (Swagger UI on the API
docs) sets `response.csp_inline_style_elements = True`: its scripts stay as strict.

A view marked `xframe_options_exempt` (the public web-to-lead form) is made to be embedded in
other sites: it gets `frame-ancestors *` instead of 'none', and no form-action, since the form
may be configured to redirect to the embedding site after a submission.
"""

from __future__ import annotations

import secrets

from django.utils.functional import SimpleLazyObject

HEADER = "Content-Security-Policy"

BASE_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def build_policy(
    *, nonce: str | None = None, embeddable: bool = False, inline_style_elements: bool = False
) -> str:
    policy = {name: list(sources) for name, sources in BASE_POLICY.items()}
    if nonce:
        policy["script-src"].append(f"'nonce-{nonce}'")
    if inline_style_elements:
        policy["style-src-elem"] = ["'self'", "'unsafe-inline'"]
    if embeddable:
        policy["frame-ancestors"] = ["*"]
        del policy["form-action"]
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        made: list[str] = []

        def make_nonce() -> str:
            made.append(secrets.token_urlsafe(18))
            return made[0]

        request.csp_nonce = SimpleLazyObject(make_nonce)
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = build_policy(
                nonce=made[0] if made else None,
                embeddable=getattr(response, "xframe_options_exempt", False),
                inline_style_elements=getattr(response, "csp_inline_style_elements", False),
            )
        return response


def csp_nonce(request) -> dict:
    """Template context: `{{ csp_nonce }}` for the rare inline script that needs one."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
