"""Sign in/out, the per-user language switch, and admins unlocking a locked-out sign-in.

The lockout itself (too many failed sign-ins) is django-axes' backend and middleware; its page is
leakmap.accounts.lockout.lockout_response.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from leakmap.accounts import lockout
from leakmap.accounts import services as account_services
from leakmap.accounts.models import User
from leakmap.web.views.common import admin_required

LANGUAGES = {code for code, _ in settings.LANGUAGES}


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        # The middleware reads the session, so the user's saved language wins from now on.
        language = form.get_user().language
        if language in LANGUAGES:
            self.request.session["language"] = language
        return response


class LogoutView(auth_views.LogoutView):
    pass


@require_POST
def set_language(request: HttpRequest):
    language = request.POST.get("language", "")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    if language in LANGUAGES:
        request.session["language"] = language
        if request.user.is_authenticated:
            account_services.user_set_language(user=request.user, language=language)
    return HttpResponseRedirect(target)


@admin_required
@require_POST
def user_unlock(request: HttpRequest, pk: int):
    """Let a user whose sign-in is paused for too many failures try again now."""
    target = get_object_or_404(User, pk=pk)
    lockout.lockout_clear(username=target.username)
    messages.success(request, _("“%(u)s” can sign in again.") % {"u": target})
    return redirect("settings_users")


@admin_required
@require_POST
def address_unlock(request: HttpRequest):
    """Let a client address paused for failed sign-ins or API tokens try again now."""
    address = request.POST.get("address", "").strip()
    try:
        validate_ipv46_address(address)
    except ValidationError:
        messages.error(request, _("“%(a)s” is not an IP address.") % {"a": address})
    else:
        lockout.lockout_clear(address=address)
        messages.success(request, _("Address %(a)s can sign in again.") % {"a": address})
    return redirect("settings_users")
