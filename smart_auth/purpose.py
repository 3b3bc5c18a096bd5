"""Purpose of use: why a token's holder looks at data (v3 ActReason: TREAT, ETREAT, HPAYMT, ...).

https://hl7.org/fhir/us/udap-security/b2b.html#b2b-authorization-extension-object -- a
backend service may say it in its client assertion: `extensions` -> `hl7-b2b` ->
`purpose_of_use`, an array of `system#code` strings (the ActReason OID or the FHIR code
system URL, or a bare code). Otherwise an app's registered default applies. The token
records it (TokenContext.purpose_of_use), introspection returns it, and Consent provisions
match their `purpose` against it. ETREAT (break the glass) sets consent denials aside, so
only clients registered for it (`break_glass`) may ask for it or have it as their default.
"""
from __future__ import annotations

import re
from typing import Any

from smart_auth.access import BREAK_THE_GLASS

ACT_REASON_SYSTEMS = ("urn:oid:2.16.840.1.113883.5.8", "http://terminology.hl7.org/CodeSystem/v3-ActReason")
B2B_EXTENSION = "hl7-b2b"
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class PurposeError(ValueError):
    """A purpose of use that cannot be accepted (the message is one line)."""


def check_code(code: str, where: str = "purpose of use") -> str:
    if not _CODE.match(code):
        raise PurposeError(f"{where} {code!r} is not an ActReason code (e.g. TREAT)")
    return code


def check_allowed(code: str, break_glass: bool) -> None:
    """ETREAT only for clients registered for break-the-glass."""
    if code == BREAK_THE_GLASS and not break_glass:
        raise PurposeError("ETREAT (break the glass) is only for clients registered for it (--break-glass)")


def from_assertion(claims: dict[str, Any]) -> str:
    """The purpose a client assertion's HL7 B2B extension states ("" when it states none)."""
    extensions = claims.get("extensions")
    if extensions is None:
        return ""
    b2b = extensions.get(B2B_EXTENSION) if isinstance(extensions, dict) else None
    if b2b is None:
        return ""
    if not isinstance(b2b, dict):
        raise PurposeError("extensions.hl7-b2b must be an object")
    purposes = b2b.get("purpose_of_use")
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes) or not purposes:
        raise PurposeError("extensions.hl7-b2b.purpose_of_use must be an array of system#code strings")
    if len(purposes) > 1:
        raise PurposeError("extensions.hl7-b2b.purpose_of_use: a token carries one purpose of use; name one")
    system, _, code = purposes[0].rpartition("#")
    if system and system not in ACT_REASON_SYSTEMS:
        raise PurposeError(f"extensions.hl7-b2b.purpose_of_use: {system!r} is not the v3 ActReason code system")
    return check_code(code, "extensions.hl7-b2b.purpose_of_use")
