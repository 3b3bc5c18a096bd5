"""Named people and records for the console's tests: a superuser, a view-only member of staff,
an editor, someone who should have no access, and a patient with two versions."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User

from fhir_api.store import repository

PASSWORD = "a long console password"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def staff(username: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def admin_user(db) -> User:
    return staff("root", superuser=True)


@pytest.fixture
def viewer(db) -> User:
    return staff("viewer", "Resource viewers")


@pytest.fixture
def editor(db) -> User:
    return staff("editor", "Resource editors")


@pytest.fixture
def it_manager(db) -> User:
    return staff("it", "App managers")


@pytest.fixture
def outsider(db) -> User:
    """Signs in at the authorize screen, but is not staff."""
    return User.objects.create_user("outsider", password=PASSWORD)


@pytest.fixture
def as_admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def as_viewer(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def as_editor(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def patient_v2(db) -> str:
    """Patient/pat-1 in two versions: Chalmers, then renamed Chalmers-Smith and given a birth date."""
    repository.update("Patient", "pat-1", {
        "resourceType": "Patient", "id": "pat-1", "gender": "male",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
    })
    repository.update("Patient", "pat-1", {
        "resourceType": "Patient", "id": "pat-1", "gender": "male", "birthDate": "1974-12-25",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "12345"}],
        "name": [{"family": "Chalmers-Smith", "given": ["Peter"]}],
    })
    return "pat-1"


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
