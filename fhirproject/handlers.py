"""Two middleware stacks: a lean one for the FHIR API, the full one for the site.

The staff console and the sign-in pages need sessions, CSRF, messages, django-otp and
django-axes; the FHIR API needs none of them (bearer tokens only: an admin session never
authorises it) but pays for each layer on every request, and a read by id is mostly that
overhead (issue #14). So requests under /fhir run through FHIR_API_MIDDLEWARE, everything
else through MIDDLEWARE. Both lists are in the settings, side by side.

`fhirproject.wsgi` serves with `split_application()`; the test suite's client takes the
same path (tests/conftest.py), so what the tests see is what gunicorn serves.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.utils.module_loading import import_string

API_PREFIX = "/fhir"


def is_api_path(path_info: str) -> bool:
    """Whether a request path (WSGI PATH_INFO) belongs to the FHIR API."""
    return path_info == API_PREFIX or path_info.startswith(API_PREFIX + "/")


class ApiMiddlewareMixin:
    """A Django handler whose middleware chain is FHIR_API_MIDDLEWARE.

    The same construction as django.core.handlers.base.BaseHandler.load_middleware, for a
    list of synchronous middleware (all of the API's are).
    """

    def load_middleware(self, is_async: bool = False) -> None:
        if is_async:
            raise NotImplementedError("the FHIR API's middleware stack is synchronous (WSGI)")
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(settings.FHIR_API_MIDDLEWARE):
            try:
                instance = import_string(path)(handler)
            except MiddlewareNotUsed:  # a layer that switched itself off, as Django allows
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class ApiHandler(ApiMiddlewareMixin, WSGIHandler):
    """Serves /fhir with the API's middleware."""


def split_application() -> Callable[[dict, Callable], Iterable[bytes]]:
    """The WSGI application: the API handler for /fhir, Django's full handler for the rest."""
    site, api = WSGIHandler(), ApiHandler()

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        handler = api if is_api_path(environ.get("PATH_INFO", "")) else site
        return handler(environ, start_response)

    return application
