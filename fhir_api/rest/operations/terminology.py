"""The terminology operations, over the concept tables and value set expansion of fhir_search.

https://hl7.org/fhir/R4/terminology-service.html --
`ValueSet/$expand` (https://hl7.org/fhir/R4/valueset-operation-expand.html),
`CodeSystem/$lookup` (codesystem-operation-lookup.html),
`ValueSet/$validate-code` (valueset-operation-validate-code.html),
`CodeSystem/$validate-code` (codesystem-operation-validate-code.html),
`CodeSystem/$subsumes` (codesystem-operation-subsumes.html) and
`ConceptMap/$translate` (conceptmap-operation-translate.html), each at the type level (the
value set, code system or map named by `url` or given as a resource) and the instance level
(`ValueSet/[id]/$expand`), GET with simple parameters and POST with a Parameters body.

Errors: a missing or malformed parameter is a 400; an unknown value set, code system, map or
instance a 404; a value set or code system the server cannot expand (content not-present,
an unsupported filter) a 422.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.http import HttpResponse

from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import render
from fhir_api.store import jsonio
from fhir_api.store.errors import BadRequest, NotFound, Unprocessable
from fhir_api.store.models import Resource
from fhir_search import concepts, terminology
from fhir_search.expansion import Expansion, Literal
from fhir_search.models import ConceptIndex
from fhir_search.normalize import fold

Parameters = dict[str, Any]


# -- reading parameters -----------------------------------------------------------------------


def _text(inv: Invocation, name: str) -> str | None:
    value = inv.one(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"${inv.operation}: {name} takes a non-empty string")
    return value


def _flag(inv: Invocation, name: str) -> bool:
    value = inv.one(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if value in ("true", "false"):
        return value == "true"
    raise BadRequest(f"${inv.operation}: {name} takes true or false, not {value!r}")


def _number(inv: Invocation, name: str) -> int | None:
    value = inv.one(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise BadRequest(f"${inv.operation}: {name} takes a non-negative integer, not {value!r}")
    if number < 0:
        raise BadRequest(f"${inv.operation}: {name} takes a non-negative integer, not {value!r}")
    return number


def _coding(inv: Invocation, name: str) -> dict[str, Any] | None:
    value = inv.one(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("code"), str):
        raise BadRequest(f"${inv.operation}: {name} takes a Coding with a code")
    return value


def _codings(inv: Invocation, system_name: str = "system") -> list[dict[str, Any]]:
    """What to check or translate: `code` (+ system, display), or a `coding`, or a `codeableConcept`."""
    code = _text(inv, "code")
    coding = _coding(inv, "coding")
    concept = inv.one("codeableConcept")
    given = [x for x in (code, coding, concept) if x is not None]
    if len(given) != 1:
        raise BadRequest(f"${inv.operation} takes one of code, coding and codeableConcept")
    if code is not None:
        return [{"system": _text(inv, system_name), "code": code, "display": _text(inv, "display")}]
    if coding is not None:
        return [coding]
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list) or not concept["coding"]:
        raise BadRequest(f"${inv.operation}: codeableConcept takes at least one coding")
    return [c for c in concept["coding"] if isinstance(c, dict) and isinstance(c.get("code"), str)]


def _unknown(error: terminology.TerminologyError) -> Exception:
    """Unknown definitions are a 404; what is known but cannot be used here a 422."""
    message = str(error)
    if "not known" in message:
        return NotFound(message, code="not-found")
    return Unprocessable(message, code="not-supported")


def _parameters(*parameter: dict[str, Any]) -> Parameters:
    return {"resourceType": "Parameters", "parameter": [p for p in parameter if p]}


# -- finding the definition -------------------------------------------------------------------


def _definition(inv: Invocation, resource_type: str, url_name: str, resource_name: str) -> dict[str, Any]:
    if inv.level == "instance":
        found = terminology.find(resource_type, f"{resource_type}/{inv.logical_id}")
        if found is None:
            raise NotFound(f"{resource_type}/{inv.logical_id} is not known to this server")
        return found
    given = inv.one(resource_name)
    if given is not None:
        if not isinstance(given, dict) or given.get("resourceType") != resource_type:
            raise BadRequest(f"${inv.operation}: {resource_name} takes a {resource_type} resource")
        return given
    url = _text(inv, url_name)
    if url is None:
        raise BadRequest(f"${inv.operation} needs {url_name} (or a {resource_name} resource, or an instance URL)")
    found = terminology.find(resource_type, url)
    if found is None:
        raise NotFound(f"The {resource_type} {url} is not known to this server")
    return found


def _code_system(inv: Invocation, url: str | None) -> concepts.CodeSystemIndex:
    if inv.level == "instance":
        cs = terminology.find("CodeSystem", f"CodeSystem/{inv.logical_id}")
        if cs is None:
            raise NotFound(f"CodeSystem/{inv.logical_id} is not known to this server")
        url = cs.get("url")
    if not url:
        raise BadRequest(f"${inv.operation} needs the code system: system (or url), or an instance URL")
    try:
        return concepts.code_system(url)
    except terminology.TerminologyError as error:
        raise _unknown(error) from None


def _expansion(vs: dict[str, Any]) -> Expansion:
    try:
        return terminology.expansion_of(vs)
    except terminology.TerminologyError as error:
        raise _unknown(error) from None


# -- $expand ------------------------------------------------------------------------------------


def _rows_for(literals: list[Literal]) -> dict[tuple[str, str], ConceptIndex]:
    """The indexed concepts behind listed codes (their displays, designations, status)."""
    by_system: dict[str, list[str]] = {}
    for system, code, _ in literals:
        by_system.setdefault(system, []).append(code)
    q = Q(pk__in=[])
    for system, codes in by_system.items():
        q |= Q(code_system__url=system, code__in=codes)
    rows = ConceptIndex.objects.filter(q).select_related("code_system") if by_system else []
    return {(r.code_system.url, r.code): r for r in rows}


def _contains(system: str, code: str, display: str | None, row: ConceptIndex | None,
              designations: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"system": system, "code": code}
    if row is not None and row.inactive:
        item["inactive"] = True
    shown = display or (row.display if row is not None else None)
    if shown:
        item["display"] = shown
    if designations and row is not None:
        found = [{k: v for k, v in d.items() if k in ("language", "use", "value")}
                 for d in concepts.load_json(row.designations)]
        if found:
            item["designation"] = found
    return item


def _matches_text(text: str, code: str, display: str | None) -> bool:
    folded = fold(display or code)
    return folded.startswith(text) or f" {text}" in folded or code.casefold().startswith(text)


@operation("expand", levels=("type", "instance"), types=("ValueSet",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/ValueSet-expand")
def expand(inv: Invocation) -> HttpResponse:
    vs = _definition(inv, "ValueSet", "url", "valueSet")
    text = _text(inv, "filter")
    count = _number(inv, "count")
    offset = _number(inv, "offset") or 0
    designations = _flag(inv, "includeDesignations")
    active_only = _flag(inv, "activeOnly")
    limit = settings.FHIR_MAX_COUNT if count is None else min(count, settings.FHIR_MAX_COUNT)
    expansion = _expansion(vs)

    literals = expansion.literals
    rows_of = _rows_for(literals)
    folded = fold(text) if text else None
    if folded:
        literals = [lit for lit in literals if _matches_text(folded, lit[1], lit[2] or getattr(
            rows_of.get(lit[:2]), "display", None))]
    if active_only:
        literals = [lit for lit in literals if not getattr(rows_of.get(lit[:2]), "inactive", False)]
    query = expansion.rows().select_related("code_system")
    if folded:
        query = query.filter(Q(folded__startswith=folded) | Q(folded__contains=f" {folded}")
                             | Q(code__startswith=text))
    if active_only:
        query = query.filter(inactive=False)
    total = len(literals) + (query.count() if expansion.query is not None else 0)

    contains = [_contains(s, c, d, rows_of.get((s, c)), designations) for s, c, d in literals[offset:offset + limit]]
    rest = limit - len(contains)
    if rest > 0 and expansion.query is not None:
        start = max(0, offset - len(literals))
        for row in query.order_by("code_system_id", "code")[start:start + rest]:
            contains.append(_contains(row.code_system.url, row.code, None, row, designations))

    used = [{"name": "offset", "valueInteger": offset}, {"name": "count", "valueInteger": limit}]
    if text:
        used.append({"name": "filter", "valueString": text})
    if active_only:
        used.append({"name": "activeOnly", "valueBoolean": True})
    if designations:
        used.append({"name": "includeDesignations", "valueBoolean": True})
    out = {k: vs[k] for k in ("id", "url", "version", "name", "title", "status") if k in vs}
    out["resourceType"] = "ValueSet"
    out.setdefault("status", "active")
    out["expansion"] = {"identifier": f"urn:uuid:{uuid.uuid4()}",
                        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "total": total, "offset": offset, "parameter": used}
    if contains:
        out["expansion"]["contains"] = contains
    return render(inv.request, out)


# -- $lookup ------------------------------------------------------------------------------------


def _property_value(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k.startswith("value")}


@operation("lookup", levels=("type", "instance"), types=("CodeSystem",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup")
def lookup(inv: Invocation) -> HttpResponse:
    coding = _coding(inv, "coding")
    code = coding["code"] if coding else _text(inv, "code")
    system = (coding or {}).get("system") or _text(inv, "system")
    if code is None:
        raise BadRequest("$lookup needs code (with system) or coding")
    header = _code_system(inv, system)
    found = concepts.concept(header, code)
    if found is None:
        raise NotFound(f"The code {code!r} is not in the code system {header.url}", code="not-found")
    wanted = {v for v in inv.values("property") if isinstance(v, str)}

    def want(name: str) -> bool:
        return not wanted or name in wanted

    out: list[dict[str, Any]] = [{"name": "name", "valueString": header.name or header.url}]
    if header.version:
        out.append({"name": "version", "valueString": header.version})
    if found.display:
        out.append({"name": "display", "valueString": found.display})
    if want("designation"):
        for d in concepts.load_json(found.designations):
            part = [{"name": "value", "valueString": d.get("value", "")}]
            if d.get("language"):
                part.insert(0, {"name": "language", "valueCode": d["language"]})
            if d.get("use"):
                part.insert(-1, {"name": "use", "valueCoding": d["use"]})
            out.append({"name": "designation", "part": part})
    for prop in concepts.load_json(found.properties):
        if want(prop.get("code", "")) and prop.get("code") not in ("parent", "child"):
            out.append({"name": "property", "part": [{"name": "code", "valueCode": prop.get("code", "")},
                                                     {"name": "value", **_property_value(prop)}]})
    if want("inactive") and found.inactive:
        out.append({"name": "property", "part": [{"name": "code", "valueCode": "inactive"},
                                                 {"name": "value", "valueBoolean": True}]})
    for name, up in (("parent", True), ("child", False)):
        if want(name):
            for other in concepts.related(found, up=up):
                part = [{"name": "code", "valueCode": name}, {"name": "value", "valueCode": other.code}]
                if other.display:
                    part.append({"name": "description", "valueString": other.display})
                out.append({"name": "property", "part": part})
    return render(inv.request, _parameters(*out))


# -- $validate-code -----------------------------------------------------------------------------


def _verdict(ok: bool, message: str | None, display: str | None) -> Parameters:
    out = [{"name": "result", "valueBoolean": ok}]
    if message:
        out.append({"name": "message", "valueString": message})
    if display:
        out.append({"name": "display", "valueString": display})
    return _parameters(*out)


def _display_of(system: str | None, code: str) -> str | None:
    if not system:
        return None
    try:
        found = concepts.concept(concepts.code_system(system), code)
    except terminology.TerminologyError:
        return None
    return found.display if found is not None else None


@operation("validate-code", levels=("type", "instance"), types=("ValueSet",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code")
def validate_code_in_value_set(inv: Invocation) -> HttpResponse:
    vs = _definition(inv, "ValueSet", "url", "valueSet")
    codings = _codings(inv)
    expansion = _expansion(vs)
    where = vs.get("url") or f"ValueSet/{vs.get('id')}"
    for coding in codings:
        system, code = coding.get("system"), coding["code"]
        if not expansion.contains(system, code):
            continue
        known = _display_of(system, code) or next(
            (d for s, c, d in expansion.literals if c == code and s == (system or s) and d), None)
        given = coding.get("display")
        if given and known and given != known:
            return render(inv.request, _verdict(False, f"The display {given!r} is not the display of {code!r}: "
                                                f"{known!r}", known))
        return render(inv.request, _verdict(True, None, known))
    shown = ", ".join(f"{c.get('system') or ''}|{c['code']}" if c.get("system") else repr(c["code"]) for c in codings)
    return render(inv.request, _verdict(False, f"The code {shown} is not in the value set {where}", None))


@operation("validate-code", levels=("type", "instance"), types=("CodeSystem",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code")
def validate_code_in_code_system(inv: Invocation) -> HttpResponse:
    codings = _codings(inv, system_name="url")
    header = _code_system(inv, _text(inv, "url") or next((c.get("system") for c in codings if c.get("system")), None))
    for coding in codings:
        if coding.get("system") not in (None, header.url):
            continue
        found = concepts.concept(header, coding["code"])
        if found is None:
            continue
        given = coding.get("display")
        if given and found.display and given != found.display:
            return render(inv.request, _verdict(False, f"The display {given!r} is not the display of "
                                                f"{found.code!r}: {found.display!r}", found.display))
        return render(inv.request, _verdict(True, None, found.display))
    shown = ", ".join(repr(c["code"]) for c in codings)
    return render(inv.request, _verdict(False, f"The code {shown} is not in the code system {header.url}", None))


# -- $subsumes ----------------------------------------------------------------------------------


@operation("subsumes", levels=("type", "instance"), types=("CodeSystem",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes")
def subsumes(inv: Invocation) -> HttpResponse:
    coding_a, coding_b = _coding(inv, "codingA"), _coding(inv, "codingB")
    code_a = coding_a["code"] if coding_a else _text(inv, "codeA")
    code_b = coding_b["code"] if coding_b else _text(inv, "codeB")
    if code_a is None or code_b is None:
        raise BadRequest("$subsumes needs codeA and codeB (with system), or codingA and codingB")
    systems = {c.get("system") for c in (coding_a, coding_b) if c and c.get("system")}
    if len(systems) > 1:
        raise BadRequest("$subsumes compares codes of one code system: codingA and codingB differ")
    header = _code_system(inv, _text(inv, "system") or next(iter(systems), None))
    try:
        outcome = concepts.subsumes(header, code_a, code_b)
    except terminology.TerminologyError as error:
        raise NotFound(str(error), code="not-found") from None
    return render(inv.request, _parameters({"name": "outcome", "valueCode": outcome}))


# -- $translate ---------------------------------------------------------------------------------


def _maps(inv: Invocation) -> list[dict[str, Any]]:
    """The ConceptMaps to use: the instance, `conceptMap`, `url`, or every stored map."""
    if inv.level == "instance" or inv.one("conceptMap") is not None or inv.one("url") is not None:
        return [_definition(inv, "ConceptMap", "url", "conceptMap")]
    rows = Resource.objects.filter(resource_type="ConceptMap", deleted=False).values_list("data", flat=True)
    return [jsonio.loads(d) for d in rows[: settings.FHIR_MAX_COUNT]]


def _scope_fits(cm: dict[str, Any], source: str | None, target: str | None, reverse: bool) -> bool:
    mine_source = cm.get("sourceUri") or cm.get("sourceCanonical")
    mine_target = cm.get("targetUri") or cm.get("targetCanonical")
    if reverse:
        mine_source, mine_target = mine_target, mine_source
    return (source is None or source == mine_source) and (target is None or target == mine_target)


@operation("translate", levels=("type", "instance"), types=("ConceptMap",), permission="r",
           definition="http://hl7.org/fhir/OperationDefinition/ConceptMap-translate")
def translate(inv: Invocation) -> HttpResponse:
    codings = _codings(inv)
    reverse = _flag(inv, "reverse")
    source, target = _text(inv, "source"), _text(inv, "target")
    target_system = _text(inv, "targetsystem")
    explicit = inv.level == "instance" or inv.one("conceptMap") is not None or inv.one("url") is not None
    matches: list[dict[str, Any]] = []
    for cm in _maps(inv):
        if not explicit and not _scope_fits(cm, source, target, reverse):
            continue
        where = cm.get("url") or f"ConceptMap/{cm.get('id')}"
        for group in cm.get("group", ()):
            from_system, to_system = group.get("source"), group.get("target")
            if reverse:
                from_system, to_system = to_system, from_system
            if target_system and to_system != target_system:
                continue
            for coding in codings:
                if coding.get("system") and from_system and coding["system"] != from_system:
                    continue
                matches.extend(_mapped(group, coding["code"], to_system, where, reverse))
    ok = any(m["equivalence"] not in ("unmatched", "disjoint") for m in matches)
    out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": ok}]
    if not ok:
        shown = ", ".join(repr(c["code"]) for c in codings)
        out.append({"name": "message", "valueString": f"No mapping found for {shown}"})
    for m in matches:
        part = [{"name": "equivalence", "valueCode": m["equivalence"]}]
        if m.get("concept"):
            part.append({"name": "concept", "valueCoding": m["concept"]})
        part.append({"name": "source", "valueUri": m["source"]})
        out.append({"name": "match", "part": part})
    return render(inv.request, _parameters(*out))


def _mapped(group: dict[str, Any], code: str, to_system: str | None, where: str, reverse: bool) -> list[dict]:
    out = []
    for element in group.get("element", ()):
        for mapped in element.get("target", ()) or [{}]:
            here, there = (mapped, element) if reverse else (element, mapped)
            if here.get("code") != code or (reverse and not mapped):
                continue
            equivalence = mapped.get("equivalence", "equivalent" if mapped else "unmatched")
            concept = {"system": to_system, "code": there.get("code"), "display": there.get("display")}
            concept = {k: v for k, v in concept.items() if v}
            out.append({"equivalence": equivalence, "concept": concept if there.get("code") else None,
                        "source": where})
    return out
