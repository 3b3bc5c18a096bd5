"""Instance level: read, vread, update, patch, delete, history (https://hl7.org/fhir/R4/http.html)."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_http_date_safe

from fhir_api.rest import authorization, formats
from fhir_api.store import patch as fhir_patch, repository
from fhir_api.store.errors import BadRequest, NotFound
from fhir_api.rest.responses import resource_response, version_headers
from fhir_api.rest.views.base import FhirViewSet, if_match, parse_etag, prefer
from fhir_api.rest.views.history import history_bundle


def _not_modified(request: HttpRequest, stored: repository.Stored) -> bool:
    """Conditional read: If-None-Match / If-Modified-Since (http.html#cread)."""
    etag = request.META.get("HTTP_IF_NONE_MATCH")
    if etag:
        return parse_etag(etag, "If-None-Match") == str(stored.version_id)
    since = request.META.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        when = parse_http_date_safe(since)
        return when is not None and int(stored.last_updated.timestamp()) <= when
    return False


def _not_modified_response(stored: repository.Stored) -> HttpResponse:
    response = HttpResponse(status=304)
    for key, value in version_headers(stored).items():
        response[key] = value
    return response


def written_response(request: HttpRequest, written: repository.Written) -> HttpResponse:
    status = 201 if written.created else 200
    return resource_response(request, written.stored, status=status, location=True, prefer=prefer(request))


def patch_function(request: HttpRequest) -> Callable[[dict], dict]:
    """The patch in the body as a function of the current resource (JSON Patch or FHIRPath Patch)."""
    kind = formats.request_format(request, patch=True)
    document = formats.parse_body(request, "json" if kind == "json-patch" else kind)
    if kind == "json-patch":
        return lambda current: fhir_patch.apply_json_patch(current, document)
    if not isinstance(document, dict) or document.get("resourceType") != "Parameters":
        raise BadRequest("A FHIRPath Patch body must be a Parameters resource (or use application/json-patch+json)")
    return lambda current: fhir_patch.apply_fhirpath_patch(current, document)


class InstanceViewSet(FhirViewSet):
    def read(self, request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        repository.check_type(resource_type)
        repository.check_id(logical_id)
        authorization.require_visible(request, resource_type, logical_id, "r")
        stored = repository.read(resource_type, logical_id)
        if _not_modified(request, stored):
            return _not_modified_response(stored)
        return resource_response(request, stored)

    def vread(self, request: HttpRequest, resource_type: str, logical_id: str, version_id: str) -> HttpResponse:
        repository.check_type(resource_type)
        repository.check_id(logical_id)
        # A versionId is an id (resource.html#Meta): one this server never assigned is
        # simply not known, whatever characters it has.
        if not (version_id.isascii() and version_id.isdigit() and len(version_id) <= 18):
            raise NotFound(f"{resource_type}/{logical_id}/_history/{version_id} is not known")
        authorization.require_visible(request, resource_type, logical_id, "r")
        stored = repository.vread(resource_type, logical_id, int(version_id))
        if _not_modified(request, stored):
            return _not_modified_response(stored)
        return resource_response(request, stored)

    def update(self, request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "u")  # the write guard checks the resource
        content = formats.parse_body(request)
        return written_response(request, repository.update(resource_type, logical_id, content, if_match=if_match(request)))

    def patch(self, request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        repository.check_type(resource_type)
        repository.check_id(logical_id)
        authorization.require(request, resource_type, "u")  # the write guard checks the resource
        written = repository.patch(resource_type, logical_id, patch_function(request), if_match=if_match(request))
        return written_response(request, written)

    def delete(self, request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        repository.check_id(logical_id)
        repository.check_type(resource_type)
        authorization.require(request, resource_type, "d")  # the write guard checks the resource
        written = repository.delete(resource_type, logical_id, if_match=if_match(request))
        response = HttpResponse(status=204)
        if written is not None and written.changed:
            response["ETag"] = written.stored.etag
        return response

    def history(self, request: HttpRequest, resource_type: str, logical_id: str) -> HttpResponse:
        repository.check_type(resource_type)
        repository.check_id(logical_id)
        authorization.require_visible(request, resource_type, logical_id, "r")
        if repository.current_version(resource_type, logical_id) is None:
            raise NotFound(f"{resource_type}/{logical_id} is not known")
        return history_bundle(request, f"{resource_type}/{logical_id}/_history", resource_type, logical_id)
