"""GET /fhir/openapi.json and the interactive page /fhir/docs (Swagger UI).

Swagger UI's files come from the drf-spectacular-sidecar package and are served from here,
by name from a fixed list: the page works on a machine without internet access and under
`make run`, where Django serves no static files.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path

import drf_spectacular_sidecar
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from fhir_api.rest.openapi import openapi_bytes
from fhir_api.rest.responses import base_url

SWAGGER_UI = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"})


@require_safe
def openapi_json(request: HttpRequest) -> HttpResponse:
    return HttpResponse(openapi_bytes(base_url(request)), content_type="application/json")


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    return render(request, "fhir_api/docs.html", {"openapi_url": request.build_absolute_uri("/fhir/openapi.json")})


@require_safe
def api_docs_asset(request: HttpRequest, name: str) -> HttpResponse:
    if name not in ASSETS:
        raise Http404(name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = HttpResponse((SWAGGER_UI / name).read_bytes(), content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    return response
