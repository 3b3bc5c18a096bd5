"""A resource as staff read it: pretty JSON with references as links, XML, and its narrative.

The narrative is rebuilt from an allow-list, never passed through: only formatting elements
stay; scripts, styles, forms, frames, objects, images and every attribute but a few plain
ones are dropped, and links keep only in-page anchors. Remote content (images, links out) is
never loaded. The console's Content-Security-Policy is the second wall (admin_ui.security).
"""
from __future__ import annotations

import json
import re
from html import escape
from html.parser import HTMLParser
from typing import Any

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from fhir_api.store import fhir_xml
from fhir_api.store.errors import FhirError

# Formatting only (a subset of narrative.html's list): no img/map/area, which load or link
# elsewhere, and no font/basefont/center relics.
KEPT = frozenset({
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "span", "b", "em", "i", "strong", "small", "big",
    "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col", "thead", "tr", "tfoot",
    "tbody", "th", "td", "code", "samp", "ins", "del", "u", "s", "strike", "a",
})
VOID = frozenset({"br", "hr", "col"})
# Elements whose content is dropped with them (their text is code or a document of its own).
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
                                  "noscript", "template", "form", "select", "textarea", "svg", "math", "title",
                                  "head"})
KEPT_ATTRIBUTES = frozenset({"colspan", "rowspan", "title", "lang", "dir", "abbr", "scope", "headers"})
_ANCHOR = re.compile(r"#[A-Za-z0-9_\-.:]*\Z")


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = tag.lower().split(":")[-1]
        if name in DROPPED_WITH_CONTENT:
            if name not in VOID:
                self.skipping += 1
            return
        if self.skipping or name not in KEPT:
            return
        kept = []
        for key, value in attrs:
            key = key.lower()
            if key in KEPT_ATTRIBUTES and value is not None:
                kept.append(f' {key}="{escape(value)}"')
            elif name == "a" and key == "href" and value and _ANCHOR.match(value.strip()):
                kept.append(f' href="{escape(value.strip())}"')
            elif name == "a" and key == "name" and value:
                kept.append(f' id="{escape(value)}"')
        self.out.append(f"<{name}{''.join(kept)}>")
        if name not in VOID:
            self.open.append(name)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = tag.lower().split(":")[-1]
        if name in VOID and not self.skipping:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        name = tag.lower().split(":")[-1]
        if name in DROPPED_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping or name not in self.open:
            return
        while self.open:  # close what was left open inside it
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == name:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitised_narrative(resource: dict[str, Any]) -> SafeString | None:
    text = resource.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    if not isinstance(div, str):
        return None
    parser = _Sanitiser()
    parser.feed(div)
    parser.close()
    return mark_safe(parser.result())  # noqa: S308 - rebuilt from the allow-list above


_REFERENCE = re.compile(
    r'(&quot;reference&quot;: &quot;)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})((?:/_history/[A-Za-z0-9\-.]+)?&quot;)')


def json_html(resource: dict[str, Any]) -> SafeString:
    """Indented JSON, escaped, with each local reference (`Type/id`) a link to its page."""
    text = escape(json.dumps(resource, indent=2, ensure_ascii=False))

    def link(m: re.Match[str]) -> str:
        url = reverse("admin:fhir_resource", kwargs={"resource_type": m.group(2), "logical_id": m.group(3)})
        return f'{m.group(1)}<a href="{url}">{m.group(2)}/{m.group(3)}</a>{m.group(4)}'

    return mark_safe(_REFERENCE.sub(link, text))  # noqa: S308 - escaped above; links built from matched ids


def xml_text(resource: dict[str, Any]) -> str:
    """The XML form, or why there is none (a JSON string with a character XML cannot hold)."""
    try:
        return fhir_xml.dumps(resource, pretty=True).decode()
    except FhirError as exc:
        return f"(no XML form: {exc.diagnostics})"


def local_references(value: Any) -> list[str]:
    """Every local reference (Type/id) in a resource, in order, once."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", ref):
                found.append(ref)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return list(dict.fromkeys(found))
