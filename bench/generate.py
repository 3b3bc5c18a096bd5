"""Deterministic, seeded US Core-shaped test data, as Synthea's transaction Bundles carry it.

One transaction Bundle per patient (https://hl7.org/fhir/R4/http.html#transaction): the
Patient, then its Encounters and what happened in them -- vital-sign and laboratory
Observations (LOINC codes, UCUM quantities, blood pressure as components), DiagnosticReports
pointing at their lab results, Conditions (SNOMED CT), MedicationRequests (RxNorm),
Procedures, Immunizations (CVX) and AllergyIntolerances. Entries point at each other through
`urn:uuid:` fullUrls. Practitioners, Organizations and Locations come from a shared pool:
each bundle carries the ones it uses as `POST` entries with `ifNoneExist` on their
identifier, and every other entry refers to them conditionally
(`Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999900012`), which is what
Synthea writes when it exports transaction bundles. `providers_bundle()` is the pool on its
own, like Synthea's separate hospital/practitioner files, for loading it first.

Everything follows from `(seed, patient index)`: patient 7 of seed 42 is the same bundle
whatever `--patients` says, and no clock or global random state is read.

    python -m bench.generate --patients 10 --seed 42 --out /tmp/bundles
"""

from __future__ import annotations

import argparse
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

# The generated histories end here: a fixed "today", so output never depends on the clock.
REFERENCE_DATE = date(2024, 6, 30)
TZ = timezone(timedelta(hours=-5))  # Synthea writes local times with an offset

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA = "https://github.com/synthetichealth/synthea"
MRN_SYSTEM = "http://hospital.smarthealthit.org"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

MIN_ENTRIES, MAX_ENTRIES = 50, 300

# -- vocabularies ------------------------------------------------------------------------

GIVEN_MALE = [
    "José",
    "François",
    "Jürgen",
    "Søren",
    "Björn",
    "Noël",
    "Ángel",
    "Tomás",
    "Łukasz",
    "James",
    "John",
    "Robert",
    "Michael",
    "David",
    "William",
    "Richard",
    "Joseph",
    "Thomas",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Steven",
    "Andrew",
    "Kevin",
    "Brian",
    "Ethan",
    "Liam",
    "Mateo",
]
GIVEN_FEMALE = [
    "Zoë",
    "Renée",
    "Chloé",
    "Siân",
    "Inés",
    "María José",
    "Ana María",
    "Małgorzata",
    "Ngọc",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Nancy",
    "Lisa",
    "Emily",
    "Olivia",
    "Emma",
    "Sophia",
    "Isabella",
    "Mia",
    "Amélie",
]
FAMILY = [
    "Müller",
    "García",
    "Núñez",
    "O'Brien",
    "Nguyễn",
    "Łukasiewicz",
    "Öztürk",
    "Peña",
    "Schröder",
    "Åström",
    "Žukauskas",
    "Dubois",
    "Rodríguez",
    "Martínez",
    "Hernández",
    "López",
    "Pérez",
    "Sánchez",
    "Ramírez",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kowalczyk",
    "Møller",
    "Çelik",
    "Šimek",
    "Fernández",
    "González",
    "Gómez",
    "Díaz",
]
STREETS = [
    "Main St",
    "Elm Street",
    "Rue de la Paix",
    "Calle Mayor",
    "Oak Avenue",
    "Maple Drive",
    "Königsallee",
    "Cedar Lane",
    "Washington Blvd",
    "Park Road",
    "Hillside Ave",
    "Ocean View Dr",
    "Avenida Bolívar",
]
CITIES = [
    ("Boston", "MA", "02108"),
    ("Worcester", "MA", "01601"),
    ("Springfield", "MA", "01101"),
    ("Cambridge", "MA", "02138"),
    ("Lowell", "MA", "01850"),
    ("Brockton", "MA", "02301"),
    ("New Bedford", "MA", "02740"),
    ("Quincy", "MA", "02169"),
    ("Lynn", "MA", "01901"),
    ("Fall River", "MA", "02720"),
    ("Newton", "MA", "02458"),
    ("Somerville", "MA", "02143"),
]
RACES = [
    ("2106-3", "White"),
    ("2054-5", "Black or African American"),
    ("2028-9", "Asian"),
    ("1002-5", "American Indian or Alaska Native"),
    ("2076-8", "Native Hawaiian or Other Pacific Islander"),
]
LANGUAGES = [
    ("en-US", "English (United States)"),
    ("es", "Spanish"),
    ("pt", "Portuguese"),
    ("fr", "French"),
    ("vi", "Vietnamese"),
    ("de", "German"),
]
ORG_NAMES = [
    "Clínica Santa Lucía",
    "Mercy Riverside Medical Center",
    "Hôpital Saint-Éloi Community Clinic",
    "North Shore Family Practice",
    "Brookline Pediatrics",
    "Müllerstadt General Hospital",
    "Bay State Urgent Care",
    "Cape Harbor Health",
    "Pioneer Valley Internal Medicine",
    "Greater Lowell Health Center",
    "Old Colony Hospital",
    "São Paulo Street Primary Care",
]

# (SNOMED code, display, encounter class, minutes low-high)
ENCOUNTER_TYPES = {
    "wellness": ("410620009", "Well child visit (procedure)", "AMB", 15, 40),
    "adult_wellness": ("162673000", "General examination of patient (procedure)", "AMB", 15, 40),
    "symptom": ("185345009", "Encounter for symptom (procedure)", "AMB", 15, 45),
    "checkup": ("185349003", "Encounter for check up (procedure)", "AMB", 15, 30),
    "emergency": ("50849002", "Emergency room admission (procedure)", "EMER", 60, 360),
    "inpatient": ("32485007", "Hospital admission (procedure)", "IMP", 1440, 7200),
}
ACT_CODE = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}

# Vital signs: (LOINC, display, UCUM code, low, high, decimals)
VITALS = [
    ("8302-2", "Body Height", "cm", 150.0, 195.0, 1),
    ("29463-7", "Body Weight", "kg", 48.0, 120.0, 1),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18.0, 38.0, 1),
    ("8867-4", "Heart rate", "/min", 55.0, 100.0, 0),
    ("9279-1", "Respiratory rate", "/min", 12.0, 20.0, 0),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.9, 1),
    ("2708-6", "Oxygen saturation in Arterial blood", "%", 94.0, 100.0, 0),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 0.0, 4.0, 0),
]
BP = ("85354-9", "Blood pressure panel with all children optional")
SYSTOLIC = ("8480-6", "Systolic blood pressure", 105.0, 150.0)
DIASTOLIC = ("8462-4", "Diastolic blood pressure", 65.0, 95.0)

# Lab panels: (panel LOINC, display, [(LOINC, display, UCUM, low, high, normal low, normal high, decimals)])
LAB_PANELS = [
    (
        "58410-2",
        "CBC panel - Blood by Automated count",
        [
            (
                "6690-2",
                "Leukocytes [#/volume] in Blood by Automated count",
                "10*3/uL",
                3.5,
                11.5,
                4.5,
                11.0,
                1,
            ),
            (
                "789-8",
                "Erythrocytes [#/volume] in Blood by Automated count",
                "10*6/uL",
                3.9,
                6.0,
                4.2,
                5.9,
                2,
            ),
            ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11.0, 17.5, 12.0, 17.0, 1),
            (
                "4544-3",
                "Hematocrit [Volume Fraction] of Blood by Automated count",
                "%",
                34.0,
                52.0,
                36.0,
                50.0,
                1,
            ),
            ("787-2", "MCV [Entitic volume] by Automated count", "fL", 78.0, 100.0, 80.0, 96.0, 1),
            (
                "777-3",
                "Platelets [#/volume] in Blood by Automated count",
                "10*3/uL",
                140.0,
                450.0,
                150.0,
                400.0,
                0,
            ),
        ],
    ),
    (
        "51990-0",
        "Basic metabolic panel - Blood",
        [
            ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65.0, 180.0, 70.0, 99.0, 1),
            ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 6.0, 24.0, 7.0, 20.0, 1),
            ("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.5, 1.6, 0.6, 1.3, 2),
            ("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 8.4, 10.6, 8.6, 10.3, 1),
            ("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 134.0, 146.0, 136.0, 145.0, 0),
            ("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.3, 5.3, 3.5, 5.1, 1),
            ("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 96.0, 110.0, 98.0, 107.0, 0),
            ("20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "mmol/L", 20.0, 31.0, 22.0, 29.0, 0),
        ],
    ),
    (
        "57698-3",
        "Lipid panel with direct LDL - Serum or Plasma",
        [
            ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140.0, 290.0, 0.0, 200.0, 0),
            ("2571-8", "Triglycerides [Mass/volume] in Serum or Plasma", "mg/dL", 60.0, 300.0, 0.0, 150.0, 0),
            (
                "18262-6",
                "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
                "mg/dL",
                60.0,
                190.0,
                0.0,
                130.0,
                0,
            ),
            (
                "2085-9",
                "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
                "mg/dL",
                30.0,
                90.0,
                40.0,
                200.0,
                0,
            ),
        ],
    ),
    (
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        [
            ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.6, 9.5, 4.0, 5.6, 1),
        ],
    ),
]

# Chronic conditions: (SNOMED, display, prevalence, minimum age, RxNorm medication or None)
CHRONIC = [
    ("59621000", "Essential hypertension (disorder)", 0.25, 30, ("314076", "lisinopril 10 MG Oral Tablet")),
    ("55822004", "Hyperlipidemia (disorder)", 0.2, 35, ("316672", "Simvastatin 10 MG Oral Tablet")),
    (
        "44054006",
        "Diabetes mellitus type 2 (disorder)",
        0.1,
        30,
        ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ),
    ("714628002", "Prediabetes (finding)", 0.15, 18, None),
    (
        "195967001",
        "Asthma (disorder)",
        0.1,
        2,
        ("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    ),
    ("162864005", "Body mass index 30+ - obesity (finding)", 0.2, 18, None),
    ("239873007", "Osteoarthritis of knee (disorder)", 0.1, 50, ("310965", "Ibuprofen 200 MG Oral Tablet")),
    ("235595009", "Gastroesophageal reflux disease (disorder)", 0.08, 20, None),
]
# Acute problems seen at symptom/emergency visits: (SNOMED, display, days to resolve, RxNorm or None)
ACUTE = [
    ("444814009", "Viral sinusitis (disorder)", 14, None),
    ("195662009", "Acute viral pharyngitis (disorder)", 10, ("313782", "Acetaminophen 325 MG Oral Tablet")),
    ("10509002", "Acute bronchitis (disorder)", 21, None),
    ("65363002", "Otitis media (disorder)", 14, ("308182", "Amoxicillin 250 MG Oral Capsule")),
    ("43878008", "Streptococcal sore throat (disorder)", 10, ("308182", "Amoxicillin 250 MG Oral Capsule")),
    ("44465007", "Sprain of ankle (disorder)", 28, ("310965", "Ibuprofen 200 MG Oral Tablet")),
    ("283371005", "Laceration of forearm (disorder)", 21, None),
    ("37796009", "Migraine (disorder)", 3, ("313782", "Acetaminophen 325 MG Oral Tablet")),
]
WELLNESS_PROCEDURES = [
    ("430193006", "Medication reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("171207006", "Depression screening (procedure)"),
    ("428191000124101", "Documentation of current medications (procedure)"),
    ("268556000", "Urine screening for glucose (procedure)"),
]
VISIT_PROCEDURES = [
    ("117015009", "Throat culture (procedure)"),
    ("23426006", "Measurement of respiratory function (procedure)"),
    ("399208008", "Plain chest X-ray (procedure)"),
    ("76601001", "Intramuscular injection (procedure)"),
    ("288086009", "Suture open wound (procedure)"),
]
COLONOSCOPY = ("73761001", "Colonoscopy (procedure)")
# CVX vaccines: (code, display, minimum age, maximum age)
VACCINES = [
    ("08", "Hep B, adolescent or pediatric", 0, 2),
    ("20", "DTaP", 0, 6),
    ("10", "IPV", 0, 6),
    ("49", "Hib (PRP-OMP)", 0, 2),
    ("133", "Pneumococcal conjugate PCV 13", 0, 2),
    ("21", "varicella", 1, 6),
    ("03", "MMR", 1, 6),
    ("83", "Hep A, ped/adol, 2 dose", 1, 3),
    ("62", "HPV, quadrivalent", 11, 26),
    ("115", "Tdap", 11, 200),
    ("113", "Td (adult) preservative free", 19, 200),
    ("121", "zoster", 50, 200),
    ("33", "pneumococcal polysaccharide vaccine, 23 valent", 65, 200),
    (
        "208",
        "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
        12,
        200,
    ),
]
FLU = ("140", "Influenza, seasonal, injectable, preservative free")
# Allergies: (SNOMED, display, category)
ALLERGIES = [
    ("91936005", "Allergy to penicillin (finding)", "medication"),
    ("294505008", "Allergy to sulfonamides (finding)", "medication"),
    ("300916003", "Latex allergy (finding)", "environment"),
    ("232347008", "Dander (animal) allergy (finding)", "environment"),
    ("419474003", "Allergy to mould (finding)", "environment"),
    ("232350006", "House dust mite allergy (finding)", "environment"),
    ("418689008", "Allergy to grass pollen (finding)", "environment"),
    ("91935009", "Allergy to peanuts (finding)", "food"),
    ("417532002", "Allergy to fish (finding)", "food"),
    ("300913006", "Shellfish allergy (finding)", "food"),
]
REACTIONS = [
    ("247472004", "Wheal (finding)"),
    ("271807003", "Eruption of skin (disorder)"),
    ("267036007", "Dyspnea (finding)"),
    ("49727002", "Cough (finding)"),
    ("39579001", "Anaphylaxis (disorder)"),
    ("418290006", "Itching of skin (finding)"),
]


# -- helpers -----------------------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": text or display}


def _dt(t: datetime) -> str:
    return t.astimezone(TZ).isoformat(timespec="seconds")


def _instant(t: datetime) -> str:
    return t.astimezone(TZ).isoformat(timespec="milliseconds")


def _quantity(value: float, code: str, decimals: int) -> dict[str, Any]:
    number: float | int = round(value, decimals) if decimals else int(round(value))
    return {"value": number, "unit": code, "system": UCUM, "code": code}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBS_CATEGORY, code, display)], "text": display}]


def _phone(rng: random.Random) -> str:
    return f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"


def _address(rng: random.Random) -> dict[str, Any]:
    city, state, postal = rng.choice(CITIES)
    return {
        "line": [f"{rng.randint(1, 999)} {rng.choice(STREETS)}"],
        "city": city,
        "state": state,
        "postalCode": postal,
        "country": "US",
    }


# -- the shared pool of practitioners, organizations and locations -------------------------


@dataclass(frozen=True)
class Provider:
    """A pooled resource, found by identifier: POSTed with ifNoneExist, referenced conditionally."""

    resource_type: str
    system: str
    value: str
    resource: dict[str, Any] = field(compare=False, hash=False)
    display: str = field(compare=False, hash=False)

    @property
    def criteria(self) -> str:
        return f"identifier={self.system}|{self.value}"

    @property
    def reference(self) -> dict[str, str]:
        return {"reference": f"{self.resource_type}?{self.criteria}", "display": self.display}

    def entry(self, full_url: str) -> dict[str, Any]:
        return {
            "fullUrl": full_url,
            "resource": self.resource,
            "request": {"method": "POST", "url": self.resource_type, "ifNoneExist": self.criteria},
        }


@dataclass(frozen=True)
class Site:
    organization: Provider
    location: Provider
    practitioners: tuple[Provider, ...]


def provider_pool(seed: int) -> list[Site]:
    """The care sites every patient bundle draws from: a fixed pool per seed."""
    rng = random.Random(f"{seed}/providers")
    sites = []
    for number, name in enumerate(ORG_NAMES):
        org_id = _uuid(rng)
        address = _address(rng)
        org_npi = f"{1_000_000_000 + seed % 1000 * 1000 + number:010d}"
        org = {
            "resourceType": "Organization",
            "meta": {"profile": [US_CORE + "us-core-organization"]},
            "identifier": [{"system": SYNTHEA, "value": org_id}, {"system": NPI, "value": org_npi}],
            "active": True,
            "type": [
                _concept(
                    "http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider"
                )
            ],
            "name": name,
            "telecom": [{"system": "phone", "value": _phone(rng)}],
            "address": [address],
        }
        organization = Provider("Organization", SYNTHEA, org_id, org, name)
        loc_id = _uuid(rng)
        location = Provider(
            "Location",
            SYNTHEA,
            loc_id,
            {
                "resourceType": "Location",
                "meta": {"profile": [US_CORE + "us-core-location"]},
                "identifier": [{"system": SYNTHEA, "value": loc_id}],
                "status": "active",
                "name": name,
                "telecom": [{"system": "phone", "value": _phone(rng)}],
                "address": address,
                "position": {
                    "longitude": round(-71.06 - rng.random(), 6),
                    "latitude": round(42.36 - rng.random(), 6),
                },
                "managingOrganization": organization.reference,
            },
            name,
        )
        practitioners = []
        for slot in range(rng.randint(3, 6)):
            gender = rng.choice(["male", "female"])
            given = rng.choice(GIVEN_MALE if gender == "male" else GIVEN_FEMALE)
            family = rng.choice(FAMILY)
            npi = f"{9_999_900_000 + (seed % 100) * 1000 + number * 10 + slot:010d}"
            display = f"Dr. {given} {family}"
            practitioners.append(
                Provider(
                    "Practitioner",
                    NPI,
                    npi,
                    {
                        "resourceType": "Practitioner",
                        "meta": {"profile": [US_CORE + "us-core-practitioner"]},
                        "identifier": [{"system": NPI, "value": npi}],
                        "active": True,
                        "name": [{"family": family, "given": [given], "prefix": ["Dr."]}],
                        "telecom": [{"system": "email", "value": f"{npi}@example.org", "use": "work"}],
                        "address": [address],
                        "gender": gender,
                    },
                    display,
                )
            )
        sites.append(Site(organization, location, tuple(practitioners)))
    return sites


_TYPE_ORDER = {"Organization": 0, "Location": 1, "Practitioner": 2}


def _sorted_providers(providers: set[Provider] | list[Provider]) -> list[Provider]:
    # One global order (type, identifier): concurrent transactions take their ifNoneExist
    # locks in the same order, so two bundles sharing providers cannot deadlock.
    return sorted(providers, key=lambda p: (_TYPE_ORDER[p.resource_type], p.value))


def providers_bundle(seed: int) -> dict[str, Any]:
    """The whole pool as one transaction (Synthea's hospital/practitioner information files).

    Here a Location points at its Organization through the Organization entry's fullUrl: a
    conditional reference would have to match a resource this same transaction creates.
    """
    rng = random.Random(f"{seed}/providers-bundle")
    everyone = [
        p for site in provider_pool(seed) for p in (site.organization, site.location, *site.practitioners)
    ]
    urls = {p: "urn:uuid:" + _uuid(rng) for p in _sorted_providers(everyone)}
    by_reference = {p.reference["reference"]: url for p, url in urls.items()}
    entries = []
    for provider, url in urls.items():
        entry = provider.entry(url)
        managing = provider.resource.get("managingOrganization")
        if managing:
            resource = {
                **provider.resource,
                "managingOrganization": {**managing, "reference": by_reference[managing["reference"]]},
            }
            entry = {**entry, "resource": resource}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# -- one patient -------------------------------------------------------------------------


@dataclass
class _Chart:
    """A patient bundle under construction."""

    rng: random.Random
    patient_url: str
    patient_display: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    providers: set[Provider] = field(default_factory=set)

    def add(self, resource: dict[str, Any]) -> str:
        url = "urn:uuid:" + _uuid(self.rng)
        self.entries.append(
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return url

    def use(self, provider: Provider) -> dict[str, str]:
        self.providers.add(provider)
        return provider.reference

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": self.patient_url, "display": self.patient_display}


def _patient_resource(
    rng: random.Random, index: int, seed: int, gender: str, birth: date, site: Site, gp: Provider
) -> dict[str, Any]:
    given = rng.choice(GIVEN_MALE if gender == "male" else GIVEN_FEMALE)
    middle = rng.choice(GIVEN_MALE if gender == "male" else GIVEN_FEMALE)
    family = rng.choice(FAMILY)
    race_code, race = rng.choice(RACES)
    hispanic = rng.random() < 0.18
    language = rng.choice(LANGUAGES) if rng.random() < 0.3 else LANGUAGES[0]
    mrn = f"{seed % 1000:03d}{index:07d}"
    name: dict[str, Any] = {"use": "official", "family": family, "given": [given, middle]}
    age = (REFERENCE_DATE - birth).days // 365
    if age >= 18:
        name["prefix"] = ["Mr." if gender == "male" else rng.choice(["Ms.", "Mrs."])]
    names = [name]
    if gender == "female" and age >= 25 and rng.random() < 0.3:
        names.append({"use": "maiden", "family": rng.choice(FAMILY), "given": [given, middle]})
    married = age >= 20 and rng.random() < 0.5
    resource = {
        "resourceType": "Patient",
        "meta": {"profile": [US_CORE + "us-core-patient"]},
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Generated by '
            '<a href="https://github.com/synthetichealth/synthea">Synthea</a>-style bench data</div>',
        },
        "extension": [
            {
                "url": US_CORE + "us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": _coding("urn:oid:2.16.840.1.113883.6.238", race_code, race),
                    },
                    {"url": "text", "valueString": race},
                ],
            },
            {
                "url": US_CORE + "us-core-ethnicity",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": _coding(
                            "urn:oid:2.16.840.1.113883.6.238",
                            *(
                                ("2135-2", "Hispanic or Latino")
                                if hispanic
                                else ("2186-5", "Not Hispanic or Latino")
                            ),
                        ),
                    },
                    {
                        "url": "text",
                        "valueString": "Hispanic or Latino" if hispanic else "Not Hispanic or Latino",
                    },
                ],
            },
            {"url": US_CORE + "us-core-birthsex", "valueCode": "M" if gender == "male" else "F"},
        ],
        "identifier": [
            {"system": SYNTHEA, "value": _uuid(rng)},
            {
                "type": _concept(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical Record Number"
                ),
                "system": MRN_SYSTEM,
                "value": mrn,
            },
            {
                "type": _concept(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "SS", "Social Security Number"
                ),
                "system": SSN_SYSTEM,
                "value": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            },
        ],
        "name": names,
        "telecom": [{"system": "phone", "value": _phone(rng), "use": "home"}],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [_address(rng)],
        "maritalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            *(("M", "Married") if married else ("S", "Never Married")),
        ),
        "multipleBirthBoolean": False,
        "communication": [{"language": _concept("urn:ietf:bcp:47", *language)}],
        "generalPractitioner": [gp.reference],
        "managingOrganization": site.organization.reference,
    }
    return resource


def _condition(
    chart: _Chart, enc_url: str, code: str, display: str, onset: datetime, abatement: datetime | None
) -> str:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "meta": {"profile": [US_CORE + "us-core-condition"]},
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            *(("resolved", "Resolved") if abatement else ("active", "Active")),
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "encounter-diagnosis",
                "Encounter Diagnosis",
            )
        ],
        "code": _concept(SNOMED, code, display),
        "subject": chart.subject,
        "encounter": {"reference": enc_url},
        "onsetDateTime": _dt(onset),
        "recordedDate": _dt(onset),
    }
    if abatement:
        resource["abatementDateTime"] = _dt(abatement)
    return chart.add(resource)


def _medication(
    chart: _Chart,
    enc_url: str,
    med: tuple[str, str],
    when: datetime,
    prescriber: Provider,
    reason: str | None,
    active: bool,
) -> None:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "meta": {"profile": [US_CORE + "us-core-medicationrequest"]},
        "status": "active" if active else "stopped",
        "intent": "order",
        "medicationCodeableConcept": _concept(RXNORM, *med),
        "subject": chart.subject,
        "encounter": {"reference": enc_url},
        "authoredOn": _dt(when),
        "requester": chart.use(prescriber),
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": "Take one by mouth daily" if "Oral" in med[1] else "Two puffs twice daily",
                "timing": {
                    "repeat": {"frequency": 1 if "Oral" in med[1] else 2, "period": 1, "periodUnit": "d"}
                },
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": {"value": 1 if "Oral" in med[1] else 2}}],
            }
        ],
    }
    if reason:
        resource["reasonReference"] = [{"reference": reason}]
    chart.add(resource)


def _vitals(chart: _Chart, enc_url: str, when: datetime, adult: bool) -> None:
    rng = chart.rng
    issued = _instant(when + timedelta(minutes=5))
    for code, display, unit, low, high, decimals in VITALS:
        if not adult and code in ("8302-2", "29463-7", "39156-5"):
            low, high = low * 0.6, high * 0.6  # children are smaller
        chart.add(
            {
                "resourceType": "Observation",
                "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
                "status": "final",
                "category": _category("vital-signs", "Vital signs"),
                "code": _concept(LOINC, code, display),
                "subject": chart.subject,
                "encounter": {"reference": enc_url},
                "effectiveDateTime": _dt(when),
                "issued": issued,
                "valueQuantity": _quantity(rng.uniform(low, high), unit, decimals),
            }
        )
    chart.add(
        {
            "resourceType": "Observation",
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/bp"]},
            "status": "final",
            "category": _category("vital-signs", "Vital signs"),
            "code": _concept(LOINC, *BP),
            "subject": chart.subject,
            "encounter": {"reference": enc_url},
            "effectiveDateTime": _dt(when),
            "issued": issued,
            "component": [
                {
                    "code": _concept(LOINC, code, display),
                    "valueQuantity": _quantity(rng.uniform(low, high), "mm[Hg]", 0),
                }
                for code, display, low, high in (SYSTOLIC, DIASTOLIC)
            ],
        }
    )


def _labs(chart: _Chart, enc_url: str, when: datetime, site: Site, doctor: Provider, panels: list) -> None:
    rng = chart.rng
    collected = when + timedelta(minutes=rng.randint(5, 30))
    issued = _instant(collected + timedelta(hours=rng.randint(2, 30)))
    for panel_code, panel_display, items in panels:
        results = []
        for code, display, unit, low, high, normal_low, normal_high, decimals in items:
            value = rng.uniform(low, high)
            flag = (
                ("H", "High")
                if value > normal_high
                else ("L", "Low")
                if value < normal_low
                else ("N", "Normal")
            )
            results.append(
                {
                    "reference": chart.add(
                        {
                            "resourceType": "Observation",
                            "meta": {"profile": [US_CORE + "us-core-observation-lab"]},
                            "status": "final",
                            "category": _category("laboratory", "Laboratory"),
                            "code": _concept(LOINC, code, display),
                            "subject": chart.subject,
                            "encounter": {"reference": enc_url},
                            "effectiveDateTime": _dt(collected),
                            "issued": issued,
                            "valueQuantity": _quantity(value, unit, decimals),
                            "interpretation": [
                                _concept(
                                    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                    *flag,
                                )
                            ],
                            "referenceRange": [
                                {
                                    "low": _quantity(normal_low, unit, decimals),
                                    "high": _quantity(normal_high, unit, decimals),
                                }
                            ],
                        }
                    ),
                    "display": display,
                }
            )
        chart.add(
            {
                "resourceType": "DiagnosticReport",
                "meta": {"profile": [US_CORE + "us-core-diagnosticreport-lab"]},
                "status": "final",
                "category": [_concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
                "code": _concept(LOINC, panel_code, panel_display),
                "subject": chart.subject,
                "encounter": {"reference": enc_url},
                "effectiveDateTime": _dt(collected),
                "issued": issued,
                "performer": [chart.use(site.organization)],
                "resultsInterpreter": [chart.use(doctor)],
                "result": results,
            }
        )


def _procedure(
    chart: _Chart,
    enc_url: str,
    proc: tuple[str, str],
    start: datetime,
    site: Site,
    doctor: Provider,
    reason: str | None,
) -> None:
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "meta": {"profile": [US_CORE + "us-core-procedure"]},
        "status": "completed",
        "code": _concept(SNOMED, *proc),
        "subject": chart.subject,
        "encounter": {"reference": enc_url},
        "performedPeriod": {
            "start": _dt(start),
            "end": _dt(start + timedelta(minutes=chart.rng.randint(5, 25))),
        },
        "performer": [{"actor": chart.use(doctor)}],
        "location": chart.use(site.location),
    }
    if reason:
        resource["reasonReference"] = [{"reference": reason}]
    chart.add(resource)


def _immunization(
    chart: _Chart, enc_url: str, vaccine: tuple[str, str], when: datetime, site: Site, doctor: Provider
) -> None:
    chart.add(
        {
            "resourceType": "Immunization",
            "meta": {"profile": [US_CORE + "us-core-immunization"]},
            "status": "completed",
            "vaccineCode": _concept(CVX, *vaccine),
            "patient": chart.subject,
            "encounter": {"reference": enc_url},
            "occurrenceDateTime": _dt(when),
            "primarySource": True,
            "location": chart.use(site.location),
            "lotNumber": f"L{chart.rng.randint(10000, 99999)}",
            "performer": [{"actor": chart.use(doctor)}],
        }
    )


def _allergy(chart: _Chart, allergy: tuple[str, str, str], recorded: datetime, doctor: Provider) -> None:
    code, display, category = allergy
    reaction_code, reaction_display = chart.rng.choice(REACTIONS)
    chart.add(
        {
            "resourceType": "AllergyIntolerance",
            "meta": {"profile": [US_CORE + "us-core-allergyintolerance"]},
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"
            ),
            "verificationStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "confirmed",
                "Confirmed",
            ),
            "type": "allergy",
            "category": [category],
            "criticality": chart.rng.choice(["low", "high"]),
            "code": _concept(SNOMED, code, display),
            "patient": chart.subject,
            "recordedDate": _dt(recorded),
            "recorder": chart.use(doctor),
            "reaction": [
                {
                    "manifestation": [_concept(SNOMED, reaction_code, reaction_display)],
                    "severity": chart.rng.choice(["mild", "moderate", "severe"]),
                }
            ],
        }
    )


def _encounter_dates(rng: random.Random, birth: date, count: int) -> list[datetime]:
    """`count` visit times over the patient's recent history, oldest first."""
    span = min((REFERENCE_DATE - birth).days, 365 * 12)
    start = REFERENCE_DATE - timedelta(days=span)
    days = sorted(rng.sample(range(max(span, count + 1)), count))
    return [
        datetime(
            start.year,
            start.month,
            start.day,
            rng.randint(8, 17),
            rng.randint(0, 59),
            rng.randint(0, 59),
            tzinfo=TZ,
        )
        + timedelta(days=d)
        for d in days
    ]


def _build_patient(seed: int, index: int, encounters: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}/patient/{index}/{encounters}")
    sites = provider_pool(seed)
    home = sites[rng.randrange(len(sites))]
    gender = rng.choice(["male", "female"])
    birth = REFERENCE_DATE - timedelta(days=rng.randint(200, 365 * 90))
    age = (REFERENCE_DATE - birth).days // 365
    gp = rng.choice(home.practitioners)
    patient = _patient_resource(rng, index, seed, gender, birth, home, gp)
    name = patient["name"][0]
    chart = _Chart(rng, "", f"{' '.join(name['given'])} {name['family']}")
    chart.use(gp)
    chart.use(home.organization)
    chart.patient_url = chart.add(patient)

    chronic = [c for c in CHRONIC if age >= c[3] and rng.random() < c[2] * (1 + age / 60)]
    allergies = rng.sample(ALLERGIES, rng.choice([0, 0, 0, 1, 1, 2, 3]))
    given_vaccines: set[str] = set()
    dates = _encounter_dates(rng, birth, encounters)
    active_conditions: list[tuple[tuple, str]] = []  # (chronic row, condition url)
    for number, when in enumerate(dates):
        site = home if rng.random() < 0.85 else rng.choice(sites)
        doctor = gp if site is home and rng.random() < 0.7 else rng.choice(site.practitioners)
        age_then = (when.date() - birth).days // 365
        wellness = number % 3 == 0 or rng.random() < 0.2
        if wellness:
            kind = "wellness" if age_then < 18 else "adult_wellness"
        else:
            kind = rng.choices(["symptom", "checkup", "emergency", "inpatient"], [50, 30, 15, 5])[0]
        code, display, act, low, high = ENCOUNTER_TYPES[kind]
        end = when + timedelta(minutes=rng.randint(low, high))
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "meta": {"profile": [US_CORE + "us-core-encounter"]},
            "status": "finished",
            "class": _coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", act, ACT_CODE[act]),
            "type": [_concept(SNOMED, code, display)],
            "subject": chart.subject,
            "participant": [
                {
                    "type": [
                        _concept(
                            "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "PPRF",
                            "primary performer",
                        )
                    ],
                    "period": {"start": _dt(when), "end": _dt(end)},
                    "individual": chart.use(doctor),
                }
            ],
            "period": {"start": _dt(when), "end": _dt(end)},
            "location": [{"location": chart.use(site.location)}],
            "serviceProvider": chart.use(site.organization),
        }
        enc_url = chart.add(enc)
        entry_of_encounter = chart.entries[-1]["resource"]

        if wellness or rng.random() < 0.6:
            _vitals(chart, enc_url, when, age_then >= 18)
        reason = None
        if kind in ("symptom", "emergency", "inpatient"):
            acute_code, acute_display, days, med = rng.choice(ACUTE)
            reason = _condition(chart, enc_url, acute_code, acute_display, when, when + timedelta(days=days))
            entry_of_encounter["reasonReference"] = [{"reference": reason}]
            if med:
                _medication(chart, enc_url, med, when, doctor, reason, active=False)
            if rng.random() < 0.5:
                _procedure(chart, enc_url, rng.choice(VISIT_PROCEDURES), when, site, doctor, reason)
        if wellness:
            for row in chronic:
                if row[0] not in {c[0][0] for c in active_conditions} and rng.random() < 0.5:
                    active_conditions.append((row, _condition(chart, enc_url, row[0], row[1], when, None)))
            for row, condition_url in active_conditions:
                if row[4]:
                    _medication(
                        chart, enc_url, row[4], when, doctor, condition_url, active=number >= len(dates) - 3
                    )
            for proc in rng.sample(WELLNESS_PROCEDURES, rng.randint(1, 2)):
                _procedure(chart, enc_url, proc, when, site, doctor, None)
            if age_then >= 50 and rng.random() < 0.1:
                _procedure(chart, enc_url, COLONOSCOPY, when, site, doctor, None)
            if age_then >= 1 and rng.random() < 0.7:
                _immunization(chart, enc_url, FLU, when, site, doctor)
            due = [v for v in VACCINES if v[2] <= age_then <= v[3] and v[0] not in given_vaccines]
            for code_, display_, *_ in due[: rng.randint(0, 3)]:
                given_vaccines.add(code_)
                _immunization(chart, enc_url, (code_, display_), when, site, doctor)
        if wellness and rng.random() < 0.55 or kind == "inpatient":
            panels = [LAB_PANELS[0], LAB_PANELS[1]] if age_then >= 18 else [LAB_PANELS[0]]
            if age_then >= 30 and rng.random() < 0.5:
                panels.append(LAB_PANELS[2])
            if any(row[0] in ("44054006", "714628002") for row, _ in active_conditions):
                panels.append(LAB_PANELS[3])
            _labs(chart, enc_url, when, site, doctor, panels)
        if number == 0:
            for allergy in allergies:
                _allergy(chart, allergy, when, doctor)

    provider_entries = [p.entry("urn:uuid:" + _uuid(rng)) for p in _sorted_providers(chart.providers)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": provider_entries + chart.entries}


def patient_bundle(seed: int, index: int) -> dict[str, Any]:
    """Patient `index`'s transaction Bundle: between MIN_ENTRIES and MAX_ENTRIES entries."""
    sizer = random.Random(f"{seed}/size/{index}")
    # A realistic spread: most charts are moderate, a few are long.
    encounters = max(3, min(22, int(sizer.triangular(3, 22, 8))))
    for _ in range(40):
        bundle = _build_patient(seed, index, encounters)
        size = len(bundle["entry"])
        if size > MAX_ENTRIES:
            encounters -= 1
        elif size < MIN_ENTRIES:
            encounters += 1
        else:
            return bundle
    return bundle  # pragma: no cover - the sizes converge within a few steps


# Issue 14's $everything target is for "a Synthea patient with 500 resources": one such chart,
# at an index no --patients run reaches, so its MRN is its own.
LARGE_CHART_INDEX = 9_999_999


def large_patient_bundle(seed: int, entries: int = 500) -> dict[str, Any]:
    """A patient's transaction Bundle of at least `entries` entries (a long chart)."""
    encounters = 8
    while True:
        bundle = _build_patient(seed, LARGE_CHART_INDEX, encounters)
        if len(bundle["entry"]) >= entries:
            return bundle
        encounters += 2


def patient_bundles(seed: int, patients: int) -> Iterator[dict[str, Any]]:
    for index in range(patients):
        yield patient_bundle(seed, index)


def resources_of(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry", []):
        yield entry["resource"]


# -- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="directory for the bundle files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "providers.json").write_bytes(orjson.dumps(providers_bundle(args.seed)))
    total = 0
    for index, bundle in enumerate(patient_bundles(args.seed, args.patients)):
        total += len(bundle["entry"])
        (args.out / f"patient-{index:06d}.json").write_bytes(orjson.dumps(bundle))
    print(f"wrote providers.json and {args.patients} patient bundles ({total} entries) to {args.out}")


if __name__ == "__main__":
    main()
