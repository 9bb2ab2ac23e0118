from __future__ import annotations

from django.utils import translation


class UserLanguageMiddleware:
    """Activates the language a user chose (User.language), else the browser's, else the install's.

    Runs after the session middleware and before auth is resolved lazily, so it reads the user
    only when a session exists.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = request.session.get("language") if hasattr(request, "session") else None
        if not language:
            language = translation.get_language_from_request(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", translation.get_language())
        translation.deactivate()
        return response
