"""_include and _revinclude, :iterate and *, with search.mode include.

https://hl7.org/fhir/R4/search.html#include and #revinclude -- `_revinclude=*` (this
server's reading of the wildcard): whatever refers to a match through any reference parameter.
"""

from __future__ import annotations

import pytest

from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    org = store({"resourceType": "Organization", "name": "Acme"})
    gp = store({"resourceType": "Practitioner", "name": [{"family": "Careful"}]})
    pat = store(
        {
            "resourceType": "Patient",
            "managingOrganization": {"reference": f"Organization/{org}"},
            "generalPractitioner": [{"reference": f"Practitioner/{gp}"}],
        }
    )
    obs = [
        store(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{pat}"},
                "performer": [{"reference": f"Practitioner/{gp}"}],
            }
        )
        for _ in range(2)
    ]
    prov = store(
        {
            "resourceType": "Provenance",
            "recorded": "2021-01-01T00:00:00Z",
            "target": [{"reference": f"Patient/{pat}"}],
            "agent": [{"who": {"reference": f"Practitioner/{gp}"}}],
        }
    )
    return {"org": org, "gp": gp, "pat": pat, "obs": obs, "prov": prov}


def modes(bundle) -> dict[str, str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["search"]["mode"]
        for e in bundle["entry"]
        if e["search"]["mode"] != "outcome"
    }


def test_include_adds_referenced_resources_once(search, world):
    bundle = search.bundle("/Observation", {"_include": "Observation:patient"})
    assert modes(bundle) == {
        f"Observation/{world['obs'][0]}": "match",
        f"Observation/{world['obs'][1]}": "match",
        f"Patient/{world['pat']}": "include",
    }
    assert bundle["total"] == 2  # includes are not counted


def test_include_with_target_type(search, world):
    bundle = search.bundle("/Observation", {"_include": "Observation:performer:Organization"})
    assert all(m == "match" for m in modes(bundle).values())
    bundle = search.bundle("/Observation", {"_include": "Observation:performer:Practitioner"})
    assert modes(bundle)[f"Practitioner/{world['gp']}"] == "include"


def test_include_star(search, world):
    bundle = search.bundle("/Patient", {"_include": "*"})
    assert set(modes(bundle)) == {
        f"Patient/{world['pat']}",
        f"Organization/{world['org']}",
        f"Practitioner/{world['gp']}",
    }


def test_revinclude_adds_resources_that_refer_to_matches(search, world):
    bundle = search.bundle(
        "/Patient", [("_revinclude", "Provenance:target"), ("_revinclude", "Observation:subject")]
    )
    got = modes(bundle)
    assert got[f"Provenance/{world['prov']}"] == "include"
    assert got[f"Observation/{world['obs'][0]}"] == "include"
    assert got[f"Patient/{world['pat']}"] == "match"


def test_iterate_follows_included_resources(search, world):
    plain = search.bundle(
        "/Observation", [("_include", "Observation:patient"), ("_include", "Patient:organization")]
    )
    assert f"Organization/{world['org']}" not in modes(plain)
    iterated = search.bundle(
        "/Observation", [("_include", "Observation:patient"), ("_include:iterate", "Patient:organization")]
    )
    assert modes(iterated)[f"Organization/{world['org']}"] == "include"


def test_revinclude_iterate(search, world):
    bundle = search.bundle(
        "/Organization",
        [("_revinclude", "Patient:organization"), ("_revinclude:iterate", "Observation:patient")],
    )
    got = modes(bundle)
    assert got[f"Patient/{world['pat']}"] == "include"
    assert got[f"Observation/{world['obs'][0]}"] == "include"


def test_revinclude_star_adds_everything_that_refers_to_a_match(search, world):
    bundle = search.bundle("/Practitioner", {"_revinclude": "*"}, headers={"Prefer": "handling=strict"})
    assert modes(bundle) == {
        f"Practitioner/{world['gp']}": "match",
        f"Patient/{world['pat']}": "include",  # generalPractitioner
        f"Observation/{world['obs'][0]}": "include",  # performer
        f"Observation/{world['obs'][1]}": "include",
        f"Provenance/{world['prov']}": "include",  # agent.who
    }
    assert bundle["total"] == 1
    assert "_revinclude=*" in bundle["link"][0]["url"].replace("%2A", "*")


def test_revinclude_star_only_adds_what_refers_to_the_matches(search, world):
    bundle = search.bundle("/Organization", {"_revinclude": "*"})
    assert modes(bundle) == {f"Organization/{world['org']}": "match", f"Patient/{world['pat']}": "include"}


def test_revinclude_star_iterate_follows_the_chain_of_referrers(search, world):
    plain = search.bundle("/Organization", {"_revinclude": "*"})
    assert f"Observation/{world['obs'][0]}" not in modes(plain)
    iterated = modes(search.bundle("/Organization", {"_revinclude:iterate": "*"}))
    assert iterated[f"Patient/{world['pat']}"] == "include"
    assert iterated[f"Observation/{world['obs'][0]}"] == "include"
    assert iterated[f"Provenance/{world['prov']}"] == "include"


def test_revinclude_star_is_bounded_by_the_include_limit(search, world, settings):
    settings.FHIR_MAX_INCLUDE = 2
    bundle = search.bundle("/Practitioner", {"_revinclude": "*"})
    assert list(modes(bundle).values()).count("include") == 2


def test_revinclude_star_on_a_system_search(search, world):
    bundle = search.bundle("/", [("_type", "Organization"), ("_revinclude", "*")])
    assert modes(bundle)[f"Patient/{world['pat']}"] == "include"


def test_deleted_resources_are_not_included(search, world):
    from fhir_api.store import repository

    repository.delete("Patient", world["pat"])
    bundle = search.bundle("/Observation", {"_include": "Observation:patient"})
    assert all(m == "match" for m in modes(bundle).values())


def test_include_of_another_type_needs_iterate(search, world):
    search.bundle(
        "/Observation",
        {"_include": "Patient:organization"},
        status=400,
        headers={"Prefer": "handling=strict"},
    )
    search.bundle(
        "/Observation", {"_include": "Observation:status"}, status=400, headers={"Prefer": "handling=strict"}
    )
