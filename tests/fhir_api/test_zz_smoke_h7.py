import json, pytest
pytestmark = pytest.mark.django_db

def test_smoke(fhir, patient, practitioner):
    pid = patient["id"]
    obs = fhir.post("/Observation", {"resourceType":"Observation","status":"final","code":{"text":"x"},
        "subject":{"reference":f"Patient/{pid}"},"performer":[{"reference":f"Practitioner/{practitioner['id']}"}]}).json()
    r = fhir.get(f"/Patient/{pid}/$everything")
    print(json.dumps(r.json(), indent=1)[:3000])
    r = fhir.get(f"/Patient/{pid}/$everything", _count="1")
    print(json.dumps(r.json(), indent=1)[:3000])
    r = fhir.post("/Patient/$validate", {"resourceType":"Patient","gender":5, "meta":{"profile":["http://x"]}})
    print(r.status_code, r.json())
    r = fhir.post(f"/Patient/{pid}/$meta-add", {"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"system":"s","code":"c"}]}}]})
    print(r.status_code, r.json())
    print(fhir.get("/$meta").json(), fhir.get("/Patient/$meta").json(), fhir.get(f"/Patient/{pid}/$meta").json())
