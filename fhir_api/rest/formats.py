"""Content negotiation: JSON or XML in and out, `_format`, `_pretty` (https://hl7.org/fhir/R4/http.html#mime-type)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from fhir_api.rest.body import read_body
from fhir_api.store import jsonio
from fhir_api.store.errors import BadRequest, NotAcceptable, UnsupportedMediaType

JSON_TYPE = "application/fhir+json"
XML_TYPE = "application/fhir+xml"
JSON_PATCH_TYPE = "application/json-patch+json"

_JSON_NAMES = {"json", "application/json", "application/fhir+json", "application/json+fhir", "text/json"}
_XML_NAMES = {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
_ANY = {"*/*", "application/*", "text/*"}
# Browsers ask for HTML first; we have no HTML view of resources, JSON is the useful answer.
_HTML = {"html", "text/html", "application/xhtml+xml"}


# A client that asks for plain application/json or application/xml gets that type back
# (http.html#mime-type: the server SHALL return the same mime type as the Accept header).
_PLAIN = {"application/json", "application/xml"}


@dataclass(frozen=True, slots=True)
class Format:
    xml: bool = False
    pretty: bool = False
    mime: str | None = None  # the content type to answer with when not the FHIR one

    @property
    def content_type(self) -> str:
        return (self.mime or (XML_TYPE if self.xml else JSON_TYPE)) + "; charset=utf-8"

    def render(self, content: dict[str, Any]) -> bytes:
        if self.xml:
            from fhir_api.store import fhir_xml

            return fhir_xml.dumps(content, pretty=self.pretty)
        return jsonio.dumps(content, pretty=self.pretty)


DEFAULT = Format()


def _mime(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def response_format(request: HttpRequest) -> Format:
    """The format of the answer: `_format` wins over Accept; JSON when nothing is said."""
    query = request.GET
    pretty = query.get("_pretty", "").lower() == "true"
    requested = query.get("_format")
    if requested:
        name = _mime(requested.replace(" ", "+"))  # "+" in a query string arrives as a space
        if name in _JSON_NAMES or name in _HTML:
            return Format(False, pretty)
        if name in _XML_NAMES:
            return Format(True, pretty)
        raise NotAcceptable(f"_format={requested} is not supported (use json or xml)")
    accept = request.META.get("HTTP_ACCEPT", "")
    if not accept:
        return Format(False, pretty)
    wants_xml = ""
    for item in accept.split(","):
        name = _mime(item)
        q = 1.0
        for param in item.split(";")[1:]:
            key, _, val = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if name in _JSON_NAMES or name in _HTML or name in _ANY:
            return Format(False, pretty, name if name in _PLAIN else None)
        if name in _XML_NAMES:
            wants_xml = name
            break
    if wants_xml:
        return Format(True, pretty, wants_xml if wants_xml in _PLAIN else None)
    raise NotAcceptable(f"None of the accepted types ({accept}) can be produced; use {JSON_TYPE} or {XML_TYPE}")


def request_format(request: HttpRequest, *, patch: bool = False) -> str:
    """Which kind of body this is: "json", "xml" or (for PATCH) "json-patch"."""
    if not read_body(request).strip():
        raise BadRequest("The request body is empty", code="required")
    content_type = _mime(request.META.get("CONTENT_TYPE", ""))
    if content_type in _JSON_NAMES:
        return "json"
    if content_type in _XML_NAMES:
        return "xml"
    if patch and content_type == JSON_PATCH_TYPE:
        return "json-patch"
    if not content_type:
        raise UnsupportedMediaType("The request has a body but no Content-Type")
    raise UnsupportedMediaType(f"Content-Type {content_type} is not supported; use {JSON_TYPE} or {XML_TYPE}")


def parse_body(request: HttpRequest, kind: str | None = None) -> Any:
    """The request body as a JSON-form value (XML is converted)."""
    kind = kind or request_format(request)  # also refuses an empty body
    raw = read_body(request)
    if kind == "xml":
        from fhir_api.store import fhir_xml

        return fhir_xml.loads(raw)
    return jsonio.loads(raw)
