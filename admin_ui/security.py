"""What keeps the console's pages safe in a browser, beside Django's own middleware.

- A strict Content-Security-Policy on console pages: scripts, styles, images and fonts from
  this server only, no inline script or style, no plugins, no framing, forms posting here only.
  Narratives shown in the console are sanitised too (admin_ui.resources.narrative); the policy
  is the second wall.
- Over TLS (request.is_secure(), also behind a proxy that sets SECURE_PROXY_SSL_HEADER) the
  session and CSRF cookies are marked Secure, whatever SECURE_SSL_REDIRECT says.
- Sign-in throttling (django-axes) for every sign-in that arrives over HTTP.
"""
from __future__ import annotations

from collections.abc import Callable

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
])
CONSOLE_PREFIX = "/admin"


class ConsoleSecurityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path == CONSOLE_PREFIX or request.path.startswith(CONSOLE_PREFIX + "/"):
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.setdefault("Referrer-Policy", "same-origin")
            response.setdefault("Cache-Control", "no-store")
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response


class SignInThrottle(AxesStandaloneBackend):
    """django-axes' lockout check, for sign-ins over HTTP.

    Axes refuses to run without a request; sign-ins without one (a management command, a test
    calling authenticate()) cannot be made by a remote client, so they pass through unthrottled.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
