"""The codes the consent form offers: purposes of use, security labels, resource types.

https://hl7.org/fhir/R4/consent.html -- `provision.purpose` is bound to v3 PurposeOfUse (the
ActReason codes a token carries), `provision.securityLabel` to the security labels (v3
Confidentiality and the ActCode sensitivity codes are the ones staff use), and
`provision.class` holds resource types (http://hl7.org/fhir/resource-types). Only types in the
Patient compartment are offered: consent governs a patient's data, nothing else.
"""
from __future__ import annotations

from functools import cache

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"

# v3 PurposeOfUse (http://terminology.hl7.org/ValueSet/v3-PurposeOfUse): the codes in use.
PURPOSES: dict[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment (break the glass)",
    "CAREMGT": "care management",
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "PWATRNY": "power of attorney",
    "SUPNWK": "support network",
    "HPAYMT": "healthcare payment",
    "COVERAGE": "coverage under policy or program",
    "HOPERAT": "healthcare operations",
    "HSYSADMIN": "health system administration",
    "HRESCH": "healthcare research",
    "CLINTRCH": "clinical trial research",
    "PUBHLTH": "public health",
    "HLEGAL": "legal",
    "HMARKT": "healthcare marketing",
    "HDIRECT": "directory",
}

# (system, code) -> display: confidentiality levels and sensitive kinds of information.
LABELS: dict[tuple[str, str], str] = {
    (CONFIDENTIALITY, "R"): "restricted",
    (CONFIDENTIALITY, "V"): "very restricted",
    (CONFIDENTIALITY, "N"): "normal",
    (ACT_CODE, "PSY"): "psychiatry information",
    (ACT_CODE, "HIV"): "HIV/AIDS information",
    (ACT_CODE, "ETH"): "substance abuse information",
    (ACT_CODE, "STD"): "sexually transmitted disease information",
    (ACT_CODE, "SDV"): "sexual assault, abuse, or domestic violence information",
    (ACT_CODE, "SEX"): "sexuality and reproductive health information",
    (ACT_CODE, "GDIS"): "genetic disease information",
    (ACT_CODE, "MH"): "mental health information",
    (ACT_CODE, "SOC"): "social services information",
}

ACTOR_ROLE = {"coding": [{"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}]}
PATIENT_PRIVACY = {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]}
PATIENT_CONSENT = {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}
# The base a typed root provision states (smart_auth.consent reads OPTIN as permit, OPTOUT as deny).
POLICY_RULES = {
    "permit": {"coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}]},
    "deny": {"coding": [{"system": ACT_CODE, "code": "OPTOUT", "display": "opt-out"}]},
}


def label_key(system: str, code: str) -> str:
    return f"{system}|{code}"


def label_text(system: str, code: str) -> str:
    display = LABELS.get((system, code))
    return f"{code} ({display})" if display else (f"{code} ({system})" if system else code)


def purpose_text(code: str) -> str:
    return f"{code} ({PURPOSES[code]})" if code in PURPOSES else code


@cache
def governed_types() -> tuple[str, ...]:
    """Patient and the types of the R4 Patient compartment (what a patient's Consent governs)."""
    from fhir_api.store.structure import resource_types
    from fhir_search.consent import governed

    return tuple(sorted(t for t in resource_types() if governed(t)))
