"""Operation routing (https://hl7.org/fhir/R4/operations.html#executing)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_unknown_operation_is_404_not_supported(fhir, patient):
    for path in ("/$nothing", "/Patient/$nothing", f"/Patient/{patient['id']}/$nothing"):
        response = fhir.get(path)
        assert response.status_code == 404
        assert response.json()["issue"][0]["code"] == "not-supported"


def test_operation_on_unknown_type_is_404(fhir):
    assert fhir.get("/Unicorn/$validate").status_code == 404
