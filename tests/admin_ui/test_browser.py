"""The console in a real browser (Debian's chromium, driven by Selenium through chromedriver).

Signs in, opens a Patient from the list, compares two of its versions, restores the older
one, registers an app, writes a consent policy with the form and reads the patient's consents
and the audit trail of the app's API calls, checking on the way that the Content-Security-Policy blocks nothing
the console needs. Screenshots of each main page (1366x768) go to docs/screenshots/, which
the README shows. Skipped, saying why, where chromium or chromedriver is not installed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fhir_api.store import repository
from smart_auth.models import Client

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "a long console password"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no browser: the console's browser test needs Debian's chromium and chromium-driver "
           "(apt-get install chromium chromium-driver; .ci/run installs them)",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,768",
                     "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1366, 768)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def _records() -> None:
    for family, given, born, gender in [("Chalmers", "Peter", "1974-12-25", "male"), ("Windsor", "Anne", "1950-08-15",
                                        "female"), ("Nakamura", "Yuki", "1988-03-02", "female"),
                                        ("Okafor", "Chidi", "1962-11-30", "male")]:
        repository.create("Patient", {
            "resourceType": "Patient", "gender": gender, "birthDate": born,
            "identifier": [{"system": "http://hospital.example/mrn", "value": f"MRN-{born[:4]}"}],
            "name": [{"family": family, "given": [given]}],
            "text": {"status": "generated",
                     "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p><b>{given} {family}</b>, born {born}</p></div>'}})
    repository.update("Patient", "example", {
        "resourceType": "Patient", "id": "example", "gender": "male", "birthDate": "1974-12-25",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
        "name": [{"family": "Levin", "given": ["Henry"]}]})
    repository.update("Patient", "example", {
        "resourceType": "Patient", "id": "example", "gender": "male", "birthDate": "1974-12-25",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
        "name": [{"family": "Levin-Smith", "given": ["Henry", "J."]}],
        "telecom": [{"system": "phone", "value": "+1 555 0100"}]})
    for code, value, unit in [("Heart rate", 72, "beats/minute"), ("Body weight", 81.5, "kg")]:
        repository.create("Observation", {
            "resourceType": "Observation", "status": "final", "code": {"text": code},
            "subject": {"reference": "Patient/example"}, "effectiveDateTime": "2026-11-30T09:30:00Z",
            "valueQuantity": {"value": value, "unit": unit}})


def _shot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]


def _api_calls(settings, app: Client) -> str:
    """A practitioner's reads and searches through the registered app, and a refused call: the
    audit trail's material. Returns the practitioner's id."""
    from django.test import Client as HttpClient

    from tests.access_tokens import bearer, make_user, mint

    settings.FHIR_AUTH_REQUIRED = True
    doctor = repository.create("Practitioner", {"resourceType": "Practitioner",
                                                "name": [{"family": "Lee", "given": ["Dana"]}]}).stored.logical_id
    token = bearer(mint("user/*.rs", user=make_user("drlee"), fhir_user=f"Practitioner/{doctor}", client=app,
                        purpose="TREAT"))
    api = HttpClient()
    for path in ("/fhir/Patient/example", "/fhir/Observation?patient=example", "/fhir/Patient?family=levin"):
        assert api.get(path, headers=token).status_code == 200
    assert api.get("/fhir/Patient/example", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    return doctor


def test_console_in_a_browser(live_server, browser, django_user_model, transactional_db, settings):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    django_user_model.objects.create_user("admin", password=PASSWORD, is_staff=True, is_superuser=True)
    _records()
    driver = browser

    driver.get(live_server.url + "/admin")  # redirected to /admin/, then to sign-in
    assert "/admin/login/" in driver.current_url
    _shot(driver, "sign-in")
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form input[type=submit]").click()
    assert driver.find_element(By.CSS_SELECTOR, ".dashboard-counts")
    _shot(driver, "dashboard")

    # the admin's own stylesheet and ours loaded (static files served by the app)
    background = driver.find_element(By.ID, "header").value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")

    driver.find_element(By.CSS_SELECTOR, ".dashboard-counts a[href='/admin/fhir/Patient/']").click()
    assert driver.find_element(By.ID, "result_list")
    _shot(driver, "patient-list")
    driver.find_element(By.LINK_TEXT, "example").click()
    assert "Levin-Smith" in driver.find_element(By.CSS_SELECTOR, "pre.fhir-json").text
    _shot(driver, "resource")

    driver.find_element(By.LINK_TEXT, "History").click()
    _shot(driver, "history")
    assert driver.find_element(By.CSS_SELECTOR, "input[name=from][value='1']").is_selected()
    assert driver.find_element(By.CSS_SELECTOR, "input[name=to][value='2']").is_selected()
    driver.find_element(By.CSS_SELECTOR, "#diff-form input[type=submit]").click()
    diff = driver.find_element(By.ID, "diff").text
    assert "name[0].family" in diff and "Levin-Smith" in diff and "telecom" in diff
    _shot(driver, "diff")

    driver.find_element(By.ID, "restore-old").click()
    assert "Restored version 1 as version 3" in driver.find_element(By.CSS_SELECTOR, ".messagelist").text
    stored = repository.read("Patient", "example")
    assert stored.version_id == 3 and stored.content["name"][0]["family"] == "Levin"

    driver.get(live_server.url + "/admin/smart_auth/client/add/")
    driver.find_element(By.NAME, "name").send_keys("Growth chart")
    Select(driver.find_element(By.NAME, "kind")).select_by_value("secret")
    driver.find_element(By.NAME, "redirect_uris").send_keys("https://growth.example.org/callback")
    driver.find_element(By.NAME, "launch_uri").send_keys("https://growth.example.org/launch")
    driver.find_element(By.NAME, "allowed_scopes").send_keys("launch openid fhirUser patient/*.rs")
    driver.find_element(By.NAME, "purpose_of_use").send_keys("TREAT")
    driver.execute_script("window.scrollTo(0, 0)")
    _shot(driver, "app-registration")
    driver.find_element(By.NAME, "_save").click()
    secret = driver.find_element(By.ID, "client-secret").text
    assert len(secret) > 20
    _shot(driver, "app-secret")
    app = Client.objects.get(name="Growth chart")
    doctor = _api_calls(settings, app)

    # a consent policy for the patient: deny psychiatric records, except to their practitioner
    driver.get(live_server.url + "/admin/fhir/Patient/example/")
    driver.find_element(By.LINK_TEXT, "Consents").click()
    driver.find_element(By.CSS_SELECTOR, ".object-tools a.addlink").click()
    assert driver.find_element(By.NAME, "patient").get_attribute("value") == "Patient/example"
    driver.find_element(By.CSS_SELECTOR, "input[name=decision][value=deny]").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=labels][value$='|PSY']").click()
    driver.find_element(By.CSS_SELECTOR, "input[name=labels][value$='|R']").click()
    driver.execute_script("arguments[0].value = '2026-12-01'", driver.find_element(By.NAME, "start"))
    driver.find_element(By.CSS_SELECTOR, "input[name=exception-0-decision][value=permit]").click()
    driver.find_element(By.NAME, "exception-0-person").send_keys(f"Practitioner/{doctor}")
    Select(driver.find_element(By.NAME, "exception-0-purposes")).select_by_value("TREAT")
    driver.execute_script("window.scrollTo(0, 0)")
    _shot(driver, "consent-form")
    driver.find_element(By.CSS_SELECTOR, "#consent-form input[type=submit]").click()
    assert "Created Consent/" in driver.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert "Lee, Dana" in driver.find_element(By.CSS_SELECTOR, ".consent-card").text
    _shot(driver, "consent")
    consent = repository.read("Consent", driver.find_element(By.CSS_SELECTOR, ".consent-card").get_attribute("id")
                              .removeprefix("consent-")).content
    assert consent["provision"]["type"] == "deny" and consent["provision"]["provision"][0]["type"] == "permit"

    # the audit trail: the app's calls, the refused one, the console's own write
    driver.get(live_server.url + "/admin/audit/")
    rows = driver.find_element(By.ID, "result_list").text
    assert "Growth chart" in rows and f"Practitioner/{doctor}" in rows and "account admin" in rows
    _shot(driver, "audit")
    Select(driver.find_element(By.NAME, "outcome")).select_by_value("4,8")
    driver.find_element(By.CSS_SELECTOR, "#audit-filters input[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "outcome=4%2C8" in d.current_url)  # not the page before
    assert "refused" in driver.find_element(By.ID, "result_list").text
    assert "account admin" not in driver.find_element(By.ID, "result_list").text
    driver.find_element(By.CSS_SELECTOR, "#result_list tbody a").click()
    assert "401" in driver.find_element(By.CSS_SELECTOR, "table.audit-summary").text

    assert _csp_violations(driver) == []
