"""Sign in/out and the per-user language switch."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from leakmap.accounts import services as account_services

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
