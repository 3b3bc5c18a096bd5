"""When the care a resource records happened: the date parameter `$everything` start/end
and Consent `dataPeriod` are matched against.

https://hl7.org/fhir/R4/patient-operation-everything.html -- "the date range relates to
care dates, not record currency dates".
"""
from __future__ import annotations

from fhir_search.registry import registry

# The date search parameter that says when the care a resource records happened, for
# `start`/`end`. Types of the Patient compartment not listed use their `date` parameter when
# they have one; types with neither (Patient, Coverage, Group, BodyStructure...) have no care
# date. Where a type offers several, the one closest to "when care was given" is chosen
# (DocumentReference: the period documented, not when the document was written).
CARE_DATE: dict[str, str] = {
    "Account": "period",
    "Basic": "created",
    "ChargeItem": "occurrence",
    "Claim": "created",
    "ClaimResponse": "created",
    "Communication": "sent",
    "CommunicationRequest": "occurrence",
    "Condition": "onset-date",
    "CoverageEligibilityRequest": "created",
    "CoverageEligibilityResponse": "created",
    "DetectedIssue": "identified",
    "DeviceRequest": "event-date",
    "DocumentManifest": "created",
    "DocumentReference": "period",
    "ExplanationOfBenefit": "created",
    "Goal": "start-date",
    "ImagingStudy": "started",
    "Media": "created",
    "MedicationAdministration": "effective-time",
    "MedicationDispense": "whenhandedover",
    "MedicationRequest": "authoredon",
    "MedicationStatement": "effective",
    "NutritionOrder": "datetime",
    "Provenance": "when",
    "QuestionnaireResponse": "authored",
    "RequestGroup": "authored",
    "ServiceRequest": "occurrence",
    "Specimen": "collected",
    "VisionPrescription": "datewritten",
}
# Dates of a person, not of care: never a reason to leave a record out.
NO_CARE_DATE = frozenset({"Patient", "Person", "RelatedPerson", "Practitioner", "Device"})


def care_date_param(resource_type: str) -> str | None:
    """The care-date search parameter of a type, or None if it has none."""
    if resource_type in NO_CARE_DATE:
        return None
    code = CARE_DATE.get(resource_type, "date")
    param = registry().get(resource_type, code)
    return code if param is not None and param.type == "date" else None
