"""`$validate`: would this resource be accepted? Nothing is written.

https://hl7.org/fhir/R4/resource-operation-validate.html -- `[type]/$validate` and
`[type]/[id]/$validate`, the resource as the body or as the `resource` parameter of a
Parameters body, with `mode` (none, create, update, delete) and `profile`.

Status codes: R4 says "This operation returns a 200 OK whether or not the resource is valid.
A 4xx or 5xx error means that the validation itself could not be performed". So every verdict
on the resource, errors included, is a 200 with an OperationOutcome (HAPI moved to this in
2023, hapifhir/hapi-fhir#4662, after years of 412s); a 4xx answers only a request this
operation cannot act on: an unknown `mode`, `update`/`delete` at the type level, no resource
to check, a body that does not parse.

What is checked is what a real write checks (`fhir_api.store.validation.check`, the R4 definitions,
plus `repository.prepare`'s rules): the resource type against the URL, and per mode: create
(the server assigns the id, so a body id is reported as ignored), update (the body's id is
present and equals the URL's, the URL id is well formed, an If-Match header matches the
current version), delete (If-Match; deleting what is not there succeeds and changes nothing).

Profiles: the base definitions, and the profiles the server holds (stored StructureDefinitions,
e.g. loaded from a package), are checked (fhir_api.store.profiles); a `profile` parameter naming
one the server does not hold is an *error* issue ("not checked": the spec says the server SHALL
return an error when it cannot validate against the nominated profile), and each unknown profile
the resource claims in `meta.profile` is a *warning* that it was not checked. A clean
OperationOutcome therefore never claims more than was checked.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse

from fhir_api.rest import formats
from fhir_api.rest.body import read_body
from fhir_api.store import conformance, profiles, repository, validation
from fhir_api.store.errors import BadRequest, Issue, PreconditionFailed, issue
from fhir_api.rest.operations import Invocation, operation
from fhir_api.rest.responses import render
from fhir_api.store.structure import resource_types
from fhir_api.rest.views.base import if_match

BASE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"
MODES = ("create", "update", "delete")


def base_profile_type(url: str) -> str | None:
    """The resource type whose base definition `url` is (a `|4.0.1` version allowed), or None."""
    canonical, _, version = url.partition("|")
    if version and version != "4.0.1":
        return None
    name = canonical[len(BASE_PROFILE):] if canonical.startswith(BASE_PROFILE) else None
    return name if name in resource_types() else None


_issue = issue


def _resource_of(invocation: Invocation) -> Any:
    if invocation.resource is not None:
        return invocation.resource
    if invocation.resource_type == "Parameters" and not invocation.values("resource") \
            and invocation.request.method == "POST" and read_body(invocation.request).strip():
        # `POST Parameters/$validate` with a Parameters body and no `resource` parameter: the
        # body itself is what to check (as sent, without the URL's parameters merged in).
        return formats.parse_body(invocation.request)
    return invocation.one("resource")


def _content_issues(resource_type: str, resource: Any) -> list[Issue]:
    if not isinstance(resource, dict):
        return [_issue("error", "structure", "The resource must be a JSON object")]
    body_type = resource.get("resourceType")
    if body_type is None:
        return [_issue("error", "required", f"The body has no resourceType (the URL names {resource_type})",
                       "resourceType")]
    if body_type != resource_type:
        message = f"The resource type in the body ({body_type!r}) does not match the URL ({resource_type})"
        return [_issue("error", "invalid", message, "resourceType")]
    return list(validation.check(resource, level="full"))


def _declared_profiles(resource_type: str, resource: dict[str, Any]) -> list[Issue]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    issues = []
    for i, url in enumerate(profiles if isinstance(profiles, list) else []):
        if not isinstance(url, str):
            continue  # the structure check has reported it
        where = f"{resource_type}.meta.profile[{i}]"
        of = base_profile_type(url)
        if of is None and conformance.structure_definition(url) is not None:
            continue  # held here: validation.check has checked it
        if of is None:
            issues.append(_issue("warning", "not-supported", f"The profile {url} that the resource claims was not "
                                 "checked: it is not known to this server", where))
        elif of != resource_type:
            issues.append(_issue("error", "invalid", f"A {resource_type} cannot conform to {url}, the base "
                                 f"definition of {of}", where))
    return issues


def _nominated_profile(resource_type: str, profile: Any, resource: Any) -> list[Issue]:
    if profile is None:
        return []
    if not isinstance(profile, str) or not profile:
        raise BadRequest("$validate: profile takes a canonical URL")
    of = base_profile_type(profile)
    if of is None:
        if conformance.structure_definition(profile) is None:
            return [_issue("error", "not-supported", f"The resource was not checked against {profile}: it is not "
                           "known to this server")]
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            return []  # the content issues say what is wrong
        claimed = (resource.get("meta") or {}).get("profile") if isinstance(resource.get("meta"), dict) else None
        if isinstance(claimed, list) and profile in claimed:
            return []  # checked with the profiles the resource claims
        try:
            return profiles.check(resource, profile, full=True)
        except profiles.ProfileError as error:
            return [_issue("error", "invalid", str(error))]
    if of != resource_type:
        return [_issue("error", "invalid", f"The profile {profile} is the base definition of {of}, "
                       f"not of {resource_type}")]
    return []


def _version_issues(invocation: Invocation, current: int | None) -> list[Issue]:
    """The If-Match header of the $validate request, checked as the real write would."""
    reference = f"{invocation.resource_type}/{invocation.logical_id}"
    try:
        expected = if_match(invocation.request)
    except PreconditionFailed as error:  # a version this server never assigns
        return [_issue("error", "conflict", error.diagnostics)]
    if expected is None or expected == current:
        return []
    if current is None:
        return [_issue("error", "conflict", f"If-Match asked for version {expected}, but {reference} does not exist")]
    return [_issue("error", "conflict", f"Version conflict: If-Match asked for version {expected}, the current "
                   f"version of {reference} is {current}")]


def _create_issues(resource: dict[str, Any]) -> list[Issue]:
    if "id" not in resource:
        return []
    return [_issue("information", "informational", "The server assigns the id of a created resource; the id in "
                   "the body would be ignored", f"{resource['resourceType']}.id")]


def _update_issues(invocation: Invocation, resource: dict[str, Any]) -> list[Issue]:
    rtype, logical_id = invocation.resource_type, invocation.logical_id
    assert rtype is not None and logical_id is not None
    issues = []
    if not repository.valid_id(logical_id):
        issues.append(_issue("error", "invalid", f"'{logical_id}' is not a valid resource id ([A-Za-z0-9-.]{{1,64}})"))
    body_id = resource.get("id")
    if body_id is None:
        issues.append(_issue("error", "required", "An update must carry the resource id in the body", f"{rtype}.id"))
    elif body_id != logical_id:
        issues.append(_issue("error", "invalid", f"The id in the body ({body_id!r}) does not match the id in the URL "
                             f"({logical_id!r})", f"{rtype}.id"))
    valid_url_id = repository.valid_id(logical_id)
    current = repository.current_version(rtype, logical_id) if valid_url_id else None
    if valid_url_id and current is None:
        issues.append(_issue("information", "informational", f"{rtype}/{logical_id} does not exist: the update would "
                             "create it"))
    if valid_url_id:
        issues.extend(_version_issues(invocation, current))
    return issues


def _delete_issues(invocation: Invocation) -> list[Issue]:
    rtype, logical_id = invocation.resource_type, invocation.logical_id
    assert rtype is not None and logical_id is not None
    current = repository.current_version(rtype, logical_id)
    issues = _version_issues(invocation, current)
    if current is None:
        issues.append(_issue("information", "informational", f"{rtype}/{logical_id} does not exist: deleting it "
                             "would succeed and change nothing"))
    return issues


def _outcome(issues: list[Issue]) -> dict[str, Any]:
    shown = issues[: validation.MAX_ISSUES]
    if not shown:
        shown = [_issue("information", "informational", "All OK")]
    return {"resourceType": "OperationOutcome", "issue": shown}


@operation("validate", levels=("type", "instance"),
           definition="http://hl7.org/fhir/OperationDefinition/Resource-validate")
def validate(invocation: Invocation) -> HttpResponse:
    rtype = invocation.resource_type
    assert rtype is not None
    mode = invocation.one("mode")
    if mode is not None and mode not in MODES:
        raise BadRequest(f"$validate: mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode in ("update", "delete") and invocation.level != "instance":
        raise BadRequest(f"$validate: mode {mode} needs an instance ([type]/[id]/$validate)")
    if mode == "delete":  # the content is ignored (resource-operation-validate.html)
        return render(invocation.request, _outcome(_delete_issues(invocation)))
    resource = _resource_of(invocation)
    if resource is None:
        raise BadRequest("$validate needs the resource: the body, or the 'resource' parameter of a Parameters body")

    issues = _content_issues(rtype, resource)
    if isinstance(resource, dict) and resource.get("resourceType") == rtype:
        issues += _declared_profiles(rtype, resource)
        if mode == "create":
            issues += _create_issues(resource)
        elif mode == "update":
            issues += _update_issues(invocation, resource)
    issues += _nominated_profile(rtype, invocation.one("profile"), resource)
    # Errors first: a client reading only the first issue sees the verdict.
    order = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
    issues.sort(key=lambda i: order.get(i.get("severity", ""), 4))
    return render(invocation.request, _outcome(issues))
