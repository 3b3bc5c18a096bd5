"""The rules of a narrative's XHTML (https://hl7.org/fhir/R4/narrative.html#xhtml).

txt-1: only the basic HTML formatting elements and attributes of HTML 4.0 chapters 7-11 and
15, `<a>` (name or href), images and style attributes: no scripts, forms, frames, objects or
event handlers, and no active content through `javascript:`-style URLs. txt-2: some
non-whitespace content. Each problem names the element, so a client can fix its narrative.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

# narrative.html / HTML 4.0 chapters 7-11 and 15, plus a and img (the list the FHIR
# validator also uses).
ALLOWED_ELEMENTS = frozenset({
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong", "small", "big",
    "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col", "thead", "tr", "tfoot",
    "tbody", "th", "td", "code", "samp", "img", "map", "area", "ins", "del", "u", "s", "strike", "center", "font",
    "basefont", "dir", "menu",
})
# Attributes whose value is a URL the browser may follow or load.
_URL_ATTRIBUTES = frozenset({"href", "src", "longdesc", "usemap", "cite", "background", "action", "formaction",
                             "xlink:href", "data", "codebase", "dynsrc", "lowsrc"})
# Schemes that run code or carry a document of their own (data: images are fine).
_ACTIVE_URL = re.compile(r"\s*(?:javascript|vbscript|livescript|mocha|data\s*:\s*(?!image/))", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.has_content = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = tag.lower()
        if name not in ALLOWED_ELEMENTS:
            self.problems.append(f"the element <{name}> is not allowed in a narrative (txt-1)")
        if name == "img":
            self.has_content = True
        for key, value in attrs:
            attr = key.lower()
            if attr.startswith("on"):
                self.problems.append(f"the event attribute {attr} on <{name}> is not allowed in a narrative (txt-1)")
            elif attr in _URL_ATTRIBUTES and value and _ACTIVE_URL.match(_CONTROL.sub("", value)):
                self.problems.append(f"the {attr} of <{name}> is an active URL ({value[:40]}), not allowed (txt-1)")
            elif attr == "style" and value and re.search(r"expression\s*\(|url\s*\(\s*['\"]?\s*javascript:",
                                                        value, re.IGNORECASE):
                self.problems.append(f"the style of <{name}> runs code, not allowed in a narrative (txt-1)")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.has_content = True

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instructions are not allowed in a narrative (txt-1)")


def problems(div: str) -> list[str]:
    """What breaks txt-1/txt-2 in a narrative's XHTML (empty when it conforms)."""
    checker = _Checker()
    checker.feed(div)
    checker.close()
    found = list(dict.fromkeys(checker.problems))  # each problem once, in order
    if not checker.has_content:
        found.append("the narrative has no content (txt-2: some non-whitespace content)")
    return found
