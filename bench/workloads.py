"""The workloads of the benchmark (issue 5), each a function of a target and the loaded data.

1 ingest (transaction Bundles in parallel), 2 read by id, 3 US Core searches with parameters
sampled from the data, 4 counting, 5 `Patient/$everything`, and the mixed load used to watch
memory. What was loaded (server-assigned ids, names, codes, dates) is kept in a `Catalog`
built from the transaction responses, so every search asks for something that exists.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from bench.generate import LOINC, MRN_SYSTEM
from bench.load import Operation, Result, Session, Target, closed_loop, fixed_work

# -- what was loaded --------------------------------------------------------------------------


@dataclass
class Prepared:
    """A bundle ready to send: its bytes, and per entry what the catalog needs to know."""

    body: bytes
    facts: list[tuple[str, Any]]  # (resourceType, facts of a Patient or Observation, else None)

    @property
    def entries(self) -> int:
        return len(self.facts)


def prepare(bundle: dict[str, Any]) -> Prepared:
    """Encode a bundle once and keep only small facts: no dicts stay alive in the load generator."""
    facts: list[tuple[str, Any]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        rtype = resource["resourceType"]
        info: Any = None
        if rtype == "Patient":
            name = resource["name"][0]
            mrn = next(i["value"] for i in resource["identifier"] if i.get("system") == MRN_SYSTEM)
            info = {
                "mrn": mrn,
                "family": name["family"],
                "given": name["given"][0],
                "birthDate": resource["birthDate"],
                "gender": resource["gender"],
            }
        elif rtype == "Observation":
            info = (
                resource["code"]["coding"][0]["code"],
                resource["category"][0]["coding"][0]["code"],
                resource["effectiveDateTime"][:10],
            )
        facts.append((rtype, info))
    return Prepared(orjson.dumps(bundle), facts)


@dataclass
class Catalog:
    """Server ids and searchable facts of the loaded data (saved so --skip-ingest can reuse it)."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)
    observation_codes: dict[str, int] = field(default_factory=dict)
    resources: int = 0
    _seen: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def add(self, bundle: Prepared | dict[str, Any], response: dict[str, Any]) -> None:
        """Learn one loaded transaction: its request entries and the server's response entries."""
        prepared = bundle if isinstance(bundle, Prepared) else prepare(bundle)
        if not self._seen and self.ids:
            self._seen = {(t, i) for t, ids in self.ids.items() for i in ids}
        patient: dict[str, Any] | None = None
        labs: list[list[str]] = []
        counts: Counter[str] = Counter()
        for (rtype, info), answer in zip(prepared.facts, response.get("entry", []), strict=True):
            outcome = answer.get("response", {})
            parts = outcome.get("location", "").split("/")
            if len(parts) < 2:
                continue
            logical_id = parts[1]
            if (rtype, logical_id) not in self._seen:
                self._seen.add((rtype, logical_id))
                self.ids.setdefault(rtype, []).append(logical_id)
                if outcome.get("status", "").startswith("201"):
                    self.resources += 1
            counts[rtype] += 1
            if rtype == "Patient":
                patient = {"id": logical_id, **info, "size": prepared.entries}
            elif rtype == "Observation":
                code, category, day = info
                self.observation_codes[code] = self.observation_codes.get(code, 0) + 1
                if category == "laboratory":
                    labs.append([code, day])
        if patient is not None:
            patient["labs"] = labs
            patient["counts"] = dict(counts)
            self.patients.append(patient)

    def common_codes(self, n: int = 5) -> list[str]:
        return [code for code, _ in Counter(self.observation_codes).most_common(n)]

    def median_patient(self) -> dict[str, Any]:
        ordered = sorted(self.patients, key=lambda p: (p["size"], p["id"]))
        return ordered[len(ordered) // 2]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "patients": self.patients,
                "ids": self.ids,
                "observation_codes": self.observation_codes,
                "resources": self.resources,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Catalog:
        raw = orjson.loads(data)
        return cls(raw["patients"], raw["ids"], raw["observation_codes"], raw["resources"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_json())


# -- warm-up ----------------------------------------------------------------------------------------


def warmup_operation(s: Session) -> None:
    """Requests that make every worker load what it loads lazily (definitions, search registry)."""
    draw = s.rng.random()
    if draw < 0.2:
        s.get("metadata")
    elif draw < 0.6:
        s.get("Patient/warm-up-not-there", expect=(404,))
    else:
        s.get(_query(s.rng.choice(["Patient", "Observation", "Encounter"]), [("_count", "1")]))


def warm_up(target: Target, *, clients: int, seconds: float) -> Result:
    """Untimed: enough concurrent requests that each worker thread serves some."""
    return closed_loop(target, "warm-up", warmup_operation, clients=clients, duration=seconds, warmup=0)


# -- 1 ingest ------------------------------------------------------------------------------------

TRANSACTION_HEADERS = {"Prefer": "return=minimal"}


def post_transaction(session: Session, body: bytes) -> dict[str, Any] | None:
    response = session.call("POST", "", body, TRANSACTION_HEADERS)
    return orjson.loads(response.body) if response is not None else None


def ingest(
    target: Target,
    bundles: Sequence[Prepared | dict[str, Any]],
    *,
    clients: int,
    catalog: Catalog,
    providers: Prepared | dict[str, Any] | None = None,
) -> Result:
    """POST one transaction per patient, `clients` at a time; resources/s over the wall time.

    The provider pool goes first on its own when given (Synthea's hospital and practitioner
    files); it is not part of the timed run.
    """
    if providers is not None:
        providers = providers if isinstance(providers, Prepared) else prepare(providers)
        session = Session(target)
        answer = post_transaction(session, providers.body)
        session.close()
        if answer is None:
            raise RuntimeError(f"Loading the provider pool failed: {session.result.error_samples}")
        catalog.add(providers, answer)
    items = [b if isinstance(b, Prepared) else prepare(b) for b in bundles]  # encoded before the clock starts
    answers: list[dict[str, Any] | None] = [None] * len(items)

    def load(session: Session, index: int) -> None:
        answers[index] = post_transaction(session, items[index].body)

    before = catalog.resources
    result = fixed_work(target, "ingest", list(range(len(items))), load, clients=clients)
    entries = 0
    for item, answer in zip(items, answers, strict=True):
        if answer is not None:
            catalog.add(item, answer)
            entries += item.entries
    created = catalog.resources - before
    result.extra.update(
        {
            "bundles": len(items),
            "entries": entries,
            "resources_created": created,  # entries minus the pooled ones ifNoneExist found
            "resources_per_s": round(created / result.seconds, 1),
            "entries_per_s": round(entries / result.seconds, 1),
            "bytes": sum(len(i.body) for i in items),
        }
    )
    return result


# -- 2 read by id ------------------------------------------------------------------------------


def read_operation(catalog: Catalog) -> Operation:
    patients = catalog.ids.get("Patient", [])
    observations = catalog.ids.get("Observation", [])

    def read(session: Session) -> None:
        if session.rng.random() < 0.5:
            session.get(f"Patient/{session.rng.choice(patients)}")
        else:
            session.get(f"Observation/{session.rng.choice(observations)}")

    return read


def read_paths(catalog: Catalog, seed: int, count: int = 4000) -> list[str]:
    """The same mix as read_operation, as a list of paths (for wrk)."""
    rng = random.Random(seed)
    patients = catalog.ids.get("Patient", [])
    observations = catalog.ids.get("Observation", [])
    return [f"Patient/{rng.choice(patients)}" if rng.random() < 0.5 else f"Observation/{rng.choice(observations)}"
            for _ in range(count)]


# -- 3 US Core searches, 4 counting, 5 $everything --------------------------------------------------


def _query(resource_type: str, params: list[tuple[str, str]]) -> str:
    return f"{resource_type}?{urlencode(params, safe=':|')}"


def _bundle(session: Session, path: str) -> dict[str, Any] | None:
    response = session.get(path)
    if response is None:
        return None
    return orjson.loads(response.body)


def next_link(bundle: dict[str, Any] | None) -> str | None:
    links = (bundle or {}).get("link", [])
    return next((link["url"] for link in links if link.get("relation") == "next"), None)


def _counting(session: Session, bundle: dict[str, Any] | None) -> None:
    """Remember how much a search found (Bundle.total, else its matches), to show it found something."""
    if bundle is None:
        return
    found = bundle.get("total")
    if found is None:
        found = sum(1 for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match")
    session.record_found(found)


def search_operations(catalog: Catalog, pages: int = 5) -> list[tuple[str, Operation]]:
    """The US Core searches of issue 5, each drawing its parameters from the loaded data."""
    patients = catalog.patients
    with_labs = [p for p in patients if p["labs"]] or patients
    with_conditions = [p for p in patients if p.get("counts", {}).get("Condition")] or patients
    common = catalog.common_codes(5)

    def lab_by_category(s: Session) -> None:
        p = s.rng.choice(with_labs)
        _counting(s, _bundle(s, _query("Observation", [("patient", p["id"]), ("category", "laboratory")])))

    def code_and_date(s: Session) -> None:
        p = s.rng.choice(with_labs)
        code, day = s.rng.choice(p["labs"]) if p["labs"] else (common[0], "2000-01-01")
        params = [("patient", p["id"]), ("code", f"{LOINC}|{code}"), ("date", f"ge{day}")]
        _counting(s, _bundle(s, _query("Observation", params)))

    def conditions(s: Session) -> None:
        _counting(s, _bundle(s, _query("Condition", [("patient", s.rng.choice(with_conditions)["id"])])))

    def encounters_with_practitioners(s: Session) -> None:
        params = [("patient", s.rng.choice(patients)["id"]), ("_include", "Encounter:practitioner")]
        _counting(s, _bundle(s, _query("Encounter", params)))

    def family_prefix(s: Session) -> None:
        family = s.rng.choice(patients)["family"]
        _counting(s, _bundle(s, _query("Patient", [("family", family[:3])])))

    def birthdate_and_gender(s: Session) -> None:
        p = s.rng.choice(patients)  # born after the day before p: p and the younger ones
        day_before = (date.fromisoformat(p["birthDate"]) - timedelta(days=1)).isoformat()
        params = [("birthdate", f"gt{day_before}"), ("gender", p["gender"])]
        _counting(s, _bundle(s, _query("Patient", params)))

    def identifier_revinclude(s: Session) -> None:
        p = s.rng.choice(patients)
        params = [("identifier", f"{MRN_SYSTEM}|{p['mrn']}"), ("_revinclude", "Observation:subject")]
        _counting(s, _bundle(s, _query("Patient", params)))

    def code_paging(s: Session) -> None:
        bundle = _bundle(
            s, _query("Observation", [("code", f"{LOINC}|{s.rng.choice(common)}"), ("_count", "20")])
        )
        _counting(s, bundle)
        for _ in range(pages):
            link = next_link(bundle)
            if link is None:
                return
            bundle = _bundle(s, link)

    return [
        ("search Observation?patient&category=laboratory", lab_by_category),
        ("search Observation?patient&code&date=ge", code_and_date),
        ("search Condition?patient", conditions),
        ("search Encounter?patient&_include=Encounter:practitioner", encounters_with_practitioners),
        ("search Patient?family=prefix", family_prefix),
        ("search Patient?birthdate=gt&gender", birthdate_and_gender),
        ("search Patient?identifier&_revinclude=Observation:subject", identifier_revinclude),
        (f"search Observation?code&_count=20 +{pages} next pages", code_paging),
    ]


def count_operations(catalog: Catalog) -> list[tuple[str, Operation]]:
    common = catalog.common_codes(5)

    def summary_count(s: Session) -> None:
        params = [("code", f"{LOINC}|{s.rng.choice(common)}"), ("_summary", "count")]
        _counting(s, _bundle(s, _query("Observation", params)))

    def total_accurate(s: Session) -> None:
        params = [("code", f"{LOINC}|{s.rng.choice(common)}"), ("_total", "accurate")]
        _counting(s, _bundle(s, _query("Observation", params)))

    def count_all_final(s: Session) -> None:
        # Every generated Observation is final: at --patients 1000 this counts ~100k matches,
        # the size the "_summary=count over 100k Observations < 500 ms" target names.
        params = [("status", "final"), ("_summary", "count")]
        _counting(s, _bundle(s, _query("Observation", params)))

    return [
        ("count Observation?code&_summary=count", summary_count),
        ("count Observation?code&_total=accurate", total_accurate),
        ("count Observation?status=final&_summary=count (all)", count_all_final),
    ]


def everything_path(catalog: Catalog) -> str:
    return f"Patient/{catalog.median_patient()['id']}/$everything"


def probe(target: Target, path: str) -> tuple[int, str]:
    """One request outside any measurement: does the server answer this at all?"""
    from bench.load import Connection

    connection = Connection(target)
    try:
        response = connection.request("GET", path)
    finally:
        connection.close()
    return response.status, response.body[:300].decode("utf-8", "replace")


def consent_body(patient_id: str) -> dict[str, Any]:
    """A patient-privacy Consent as a hospital records one: data shared for treatment, but never
    with one named practitioner (the benchmark's token is no such actor, so every read is let
    through after the patient's provisions are evaluated)."""
    return {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "provision": [{
            "type": "deny",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP"}]},
                       "reference": {"reference": "Practitioner/bench-not-this-one"}}],
        }]},
    }


def add_consents(target: Target, catalog: Catalog) -> Callable[[], None]:
    """A Consent on every loaded patient (through `target`, a server with auth off); returns the
    function that deletes them again, so a later `--skip-ingest` run starts without them."""
    from bench.load import Connection

    connection = Connection(target)
    created: list[str] = []
    try:
        for patient_id in catalog.ids.get("Patient", []):
            response = connection.request("POST", "Consent", orjson.dumps(consent_body(patient_id)))
            if response.status != 201:
                raise RuntimeError(f"POST Consent answered {response.status}: {response.body[:200]!r}")
            created.append(orjson.loads(response.body)["id"])
    except BaseException:
        _delete_consents(target, created)
        raise
    finally:
        connection.close()
    return lambda: _delete_consents(target, created)


def _delete_consents(target: Target, ids: list[str]) -> None:
    from bench.load import Connection

    connection = Connection(target)
    try:
        for consent_id in ids:
            connection.request("DELETE", f"Consent/{consent_id}")
    finally:
        connection.close()


def large_chart(target: Target, seed: int, entries: int = 500) -> str:
    """The id of the benchmark's long chart (generate.large_patient_bundle): POSTed the first
    time (untimed), found again by its MRN on later runs (--skip-ingest)."""
    from bench.generate import large_patient_bundle

    bundle = large_patient_bundle(seed, entries)
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    mrn = next(i["value"] for i in patient["identifier"] if i.get("system") == MRN_SYSTEM)
    session = Session(target)
    try:
        found = _bundle(session, _query("Patient", [("identifier", f"{MRN_SYSTEM}|{mrn}")]))
        if found and found.get("entry"):
            return found["entry"][0]["resource"]["id"]
        answer = post_transaction(session, orjson.dumps(bundle))
        if answer is None:
            raise RuntimeError(f"the long chart was not loaded: {session.result.error_samples}")
        locations = [e["response"]["location"] for e in answer["entry"]]
        return next(loc.split("/")[1] for loc in locations if loc.startswith("Patient/"))
    finally:
        session.close()


def everything_operation(path: str) -> Operation:

    def everything(s: Session) -> None:
        bundle = _bundle(s, path)
        while bundle is not None:  # follow the pages: the whole chart is the answer
            _counting(s, bundle)
            link = next_link(bundle)
            bundle = _bundle(s, link) if link else None

    return everything


def mixed_operation(catalog: Catalog) -> Operation:
    """Reads, searches and counts in the proportions of a busy clinical app."""
    read = read_operation(catalog)
    searches = [op for _, op in search_operations(catalog, pages=1)]
    counts = [op for _, op in count_operations(catalog)]

    def mixed(s: Session) -> None:
        draw = s.rng.random()
        if draw < 0.55:
            read(s)
        elif draw < 0.95:
            s.rng.choice(searches)(s)
        else:
            s.rng.choice(counts)(s)

    return mixed


# -- 6 Observation/$lastn ----------------------------------------------------------------------------


def lastn_operations(catalog: Catalog) -> list[tuple[str, Operation]]:
    """"Latest vitals" as clinical apps ask it, for a random patient each time."""
    patients = catalog.patients

    def vitals(s: Session) -> None:
        params = [("patient", s.rng.choice(patients)["id"]), ("category", "vital-signs"), ("max", "3")]
        _counting(s, _bundle(s, _query("Observation/$lastn", params)))

    def every_code(s: Session) -> None:
        _counting(s, _bundle(s, _query("Observation/$lastn", [("patient", s.rng.choice(patients)["id"])])))

    def plain_search(s: Session) -> None:
        # What a client does without $lastn: the first page of the same matches (a yardstick in the same run).
        params = [("patient", s.rng.choice(patients)["id"]), ("category", "vital-signs")]
        _counting(s, _bundle(s, _query("Observation", params)))

    return [
        ("$lastn Observation?patient&category=vital-signs&max=3", vitals),
        ("$lastn Observation?patient (max=1, every code)", every_code),
        ("search Observation?patient&category=vital-signs (yardstick)", plain_search),
    ]


# -- 7 ingest by validation level -----------------------------------------------------------------------


def ingest_levels(
    targets: dict[str, Target], bundles: Sequence[Prepared], *, clients: int, chunk: int
) -> dict[str, Any]:
    """Resources/s of the same kind of transactions through servers that differ only in
    FHIR_VALIDATION_LEVEL. Chunks of `chunk` bundles go to the servers in turn, so a busy
    machine's ups and downs fall on every level alike; the ratio is what to read."""
    names = list(targets)
    # At least two turns per level, however few the bundles (5 bundles in chunks of 8 went
    # all to the first level, leaving the others nothing to measure).
    chunk = max(1, min(chunk, len(bundles) // (2 * len(names))))
    seconds = dict.fromkeys(names, 0.0)
    created = dict.fromkeys(names, 0)
    errors = dict.fromkeys(names, 0)
    for turn, start in enumerate(range(0, len(bundles), chunk)):
        name = names[turn % len(names)]
        result = ingest(targets[name], bundles[start : start + chunk], clients=clients, catalog=Catalog())
        seconds[name] += result.seconds
        created[name] += result.extra["resources_created"]
        errors[name] += result.errors
    out: dict[str, Any] = {
        name: {"resources_created": created[name], "seconds": round(seconds[name], 2), "errors": errors[name],
               "resources_per_s": round(created[name] / seconds[name], 1) if seconds[name] else None}
        for name in names
    }
    first, *others = names
    for other in others:
        if out[first]["resources_per_s"] and out[other]["resources_per_s"]:
            out[f"{other}_vs_{first}"] = round(out[other]["resources_per_s"] / out[first]["resources_per_s"], 3)
    return out


def run(
    target: Target,
    name: str,
    operation: Operation,
    *,
    clients: int,
    duration: float,
    warmup: float,
    seed: int = 0,
) -> Result:
    return closed_loop(target, name, operation, clients=clients, duration=duration, warmup=warmup, seed=seed)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started
