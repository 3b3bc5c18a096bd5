"""Hospital IT in the console: client apps, their tokens, and people with their fhirUser.

https://hl7.org/fhir/smart-app-launch/ -- the same registrations as `smart_client`, under the
same rules; a secret is shown once and stored hashed; tokens are listed without their value
and revoked; a person's fhirUser must be an existing Patient, Practitioner or RelatedPerson.
"""
from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from oauth2_provider.models import AccessToken, RefreshToken

from fhir_api.store import repository
from smart_auth.models import Client, FhirUserLink
from tests.access_tokens import make_client, mint
from tests.admin_ui.conftest import staff

pytestmark = pytest.mark.django_db

ADD = "/admin/smart_auth/client/add/"


def app_form(**overrides) -> dict:
    form = {
        "name": "Growth chart", "kind": "secret", "grant_type": "authorization_code",
        "redirect_uris": "https://growth.example.org/callback", "launch_uri": "https://growth.example.org/launch",
        "allowed_scopes": "launch openid fhirUser patient/*.rs", "jwks": "", "jwks_uri": "", "is_active": "on",
        "access_token_lifetime": "3600", "refresh_token_lifetime": "7776000", "purpose_of_use": "TREAT",
    }
    form.update(overrides)
    return form


def shown_secret(response) -> str:
    return re.search(r'id="client-secret">([^<]+)<', response.content.decode()).group(1)


@pytest.fixture
def as_it(client, it_manager):
    client.force_login(it_manager)
    return client


def test_registering_an_app_shows_its_secret_once_and_stores_a_hash(as_it):
    response = as_it.post(ADD, app_form())
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = shown_secret(response)
    client = Client.objects.get(name="Growth chart")
    assert client.client_secret != secret and check_password(secret, client.client_secret)
    assert client.allowed_scopes == "launch openid fhirUser patient/*.rs" and client.purpose_of_use == "TREAT"
    assert client.launch_uri == "https://growth.example.org/launch"
    page = as_it.get(f"/admin/smart_auth/client/{client.pk}/change/").content.decode()
    assert secret not in page


def test_a_public_app_has_no_secret_to_show(as_it):
    response = as_it.post(ADD, app_form(name="Portal", kind="public"))
    assert response.status_code == 302
    assert Client.objects.get(name="Portal").client_type == Client.CLIENT_PUBLIC


def test_a_backend_service_registers_with_its_jwks(as_it):
    from tests.smart_auth.conftest import public_jwks, rsa_key

    response = as_it.post(ADD, app_form(name="Export", kind="keys", grant_type="client_credentials",
                                        redirect_uris="", allowed_scopes="system/*.rs", jwks=public_jwks(rsa_key())))
    assert response.status_code == 302, response.context["adminform"].form.errors
    client = Client.objects.get(name="Export")
    assert client.authorization_grant_type == Client.GRANT_CLIENT_CREDENTIALS
    assert json.loads(client.jwks)["keys"][0]["kid"] == "rsa-1"


@pytest.mark.parametrize("overrides, field, says", [
    ({"redirect_uris": ""}, "redirect_uris", "at least one"),
    ({"redirect_uris": "not a url"}, "redirect_uris", "not an absolute URL"),
    ({"allowed_scopes": "patient/Nonsense.zz"}, "allowed_scopes", "scope"),
    ({"allowed_scopes": "system/*.rs"}, "allowed_scopes", "backend services"),
    ({"kind": "keys", "jwks": '{"keys": []}'}, "jwks", "no keys"),
    ({"kind": "keys", "jwks": "not json"}, "jwks", "not JSON"),
    ({"kind": "keys"}, "jwks", "needs a JWKS"),
    ({"grant_type": "client_credentials", "redirect_uris": ""}, "grant_type", "client_credentials"),
    ({"purpose_of_use": "no spaces allowed"}, "purpose_of_use", "not an ActReason code"),
    ({"name": ""}, "name", "must not be blank"),
])
def test_bad_registrations_are_shown_next_to_the_field(as_it, overrides, field, says):
    response = as_it.post(ADD, app_form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert says in " ".join(errors.get(field, [])), errors
    assert not Client.objects.exists()


def test_editing_an_app_applies_the_registration_rules(as_it):
    as_it.post(ADD, app_form())
    client = Client.objects.get()
    url = f"/admin/smart_auth/client/{client.pk}/change/"
    bad = as_it.post(url, app_form(redirect_uris="https://x.example/cb#frag"))
    assert bad.status_code == 200 and bad.context["adminform"].form.errors["redirect_uris"]
    good = as_it.post(url, app_form(name="Growth chart 2", access_token_lifetime="600", is_active=""))
    assert good.status_code == 302
    client.refresh_from_db()
    assert client.name == "Growth chart 2" and client.access_token_lifetime == 600 and not client.is_active


def test_a_public_app_made_confidential_gets_a_secret_shown_once(as_it):
    as_it.post(ADD, app_form(kind="public"))
    client = Client.objects.get()
    response = as_it.post(f"/admin/smart_auth/client/{client.pk}/change/", app_form())
    client.refresh_from_db()
    assert check_password(shown_secret(response), client.client_secret)


def test_rotating_a_secret_shows_the_new_one_once(as_it):
    as_it.post(ADD, app_form())
    client = Client.objects.get()
    old = client.client_secret
    response = as_it.post(f"/admin/smart_auth/client/{client.pk}/rotate-secret/")
    client.refresh_from_db()
    assert client.client_secret != old and check_password(shown_secret(response), client.client_secret)
    assert as_it.get(f"/admin/smart_auth/client/{client.pk}/rotate-secret/").status_code == 302


def test_rotating_a_public_app_secret_is_refused(as_it):
    as_it.post(ADD, app_form(kind="public"))
    client = Client.objects.get()
    response = as_it.post(f"/admin/smart_auth/client/{client.pk}/rotate-secret/", follow=True)
    assert "no secret to rotate" in response.content.decode()


def test_bulk_disable(as_it):
    apps = [make_client(name=f"app {i}") for i in range(3)]
    as_it.post("/admin/smart_auth/client/", {"action": "disable_apps", "_selected_action": [a.pk for a in apps[:2]]})
    assert [c.is_active for c in Client.objects.order_by("name")] == [False, False, True]


def test_deleting_an_app_removes_its_tokens(as_it):
    app = make_client(name="Old app")
    mint("system/*.rs", client=app)
    as_it.post(f"/admin/smart_auth/client/{app.pk}/delete/", {"post": "yes"})
    assert not Client.objects.filter(pk=app.pk).exists() and not AccessToken.objects.exists()


def test_tokens_are_listed_per_app_without_their_value(as_it, it_manager):
    app, other = make_client(name="A"), make_client(name="B")
    raw = mint("system/*.rs", client=app)
    mint("system/*.rs", client=other)
    page = as_it.get("/admin/oauth2_provider/accesstoken/", {"application__id__exact": app.pk})
    html = page.content.decode()
    assert page.status_code == 200 and raw not in html
    token = AccessToken.objects.get(application=app)
    assert token.token_checksum[:10] in html and token.token_checksum not in html
    assert len(page.context["cl"].result_list) == 1
    detail = as_it.get(f"/admin/oauth2_provider/accesstoken/{token.pk}/change/").content.decode()
    assert raw not in detail and token.token_checksum not in detail


def test_revoking_tokens(as_it, it_manager):
    app = make_client(name="A")
    mint("system/*.rs", client=app)
    mint("system/*.rs", client=app, user=it_manager)
    ids = list(AccessToken.objects.values_list("pk", flat=True))
    as_it.post("/admin/oauth2_provider/accesstoken/", {"action": "revoke_selected", "_selected_action": ids[:1]})
    assert AccessToken.objects.count() == 1
    by_user = as_it.get("/admin/oauth2_provider/accesstoken/", {"user__id__exact": it_manager.pk})
    assert len(by_user.context["cl"].result_list) == 1


def test_revoking_a_refresh_token_revokes_its_access_token(as_it, it_manager):
    app = make_client(name="A")
    mint("user/*.rs", client=app, user=it_manager)
    access = AccessToken.objects.get()
    refresh = RefreshToken.objects.create(user=it_manager, application=app, token="r" * 40, access_token=access)
    as_it.post("/admin/oauth2_provider/refreshtoken/", {"action": "revoke_selected", "_selected_action": [refresh.pk]})
    refresh.refresh_from_db()
    assert refresh.revoked is not None and not AccessToken.objects.exists()


def test_view_only_staff_cannot_change_apps_or_tokens(client, viewer):
    viewer.user_permissions.add(*_perms("smart_auth.view_client", "oauth2_provider.view_accesstoken"))
    client.force_login(viewer)
    app = make_client(name="A")
    mint("system/*.rs", client=app)
    assert client.get("/admin/smart_auth/client/").status_code == 200
    assert client.post(ADD, app_form()).status_code == 403
    assert client.post(f"/admin/smart_auth/client/{app.pk}/rotate-secret/").status_code == 403
    assert client.post(f"/admin/smart_auth/client/{app.pk}/change/", app_form(name="X")).status_code == 403
    client.post("/admin/smart_auth/client/", {"action": "disable_apps", "_selected_action": [app.pk]})
    client.post("/admin/oauth2_provider/accesstoken/",
                {"action": "revoke_selected", "_selected_action": list(AccessToken.objects.values_list("pk", flat=True))})
    app.refresh_from_db()
    assert app.is_active and app.name == "A" and AccessToken.objects.count() == 1


def _perms(*names: str):
    from django.contrib.auth.models import Permission

    return [Permission.objects.get(content_type__app_label=n.split(".")[0], codename=n.split(".")[1]) for n in names]


def person_form(**overrides) -> dict:
    form = {
        "username": "dr.careful", "email": "", "usable_password": "true", "password1": "a long password 123",
        "password2": "a long password 123", "is_staff": "on",
        "fhir_user-TOTAL_FORMS": "1", "fhir_user-INITIAL_FORMS": "0", "fhir_user-MIN_NUM_FORMS": "0",
        "fhir_user-MAX_NUM_FORMS": "1", "fhir_user-0-fhir_user": "Practitioner/dr-1",
    }
    form.update(overrides)
    return form


def test_creating_a_person_with_staff_rights_and_a_fhir_user(as_admin):
    repository.update("Practitioner", "dr-1", {"resourceType": "Practitioner", "id": "dr-1"})
    editors = staff("x").groups.model.objects.get(name="Resource editors")
    response = as_admin.post("/admin/auth/user/add/", person_form(groups=[editors.pk]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(username="dr.careful")
    assert user.is_staff and list(user.groups.all()) == [editors] and user.check_password("a long password 123")
    assert FhirUserLink.objects.get(user=user).reference == "Practitioner/dr-1"
    listed = as_admin.get("/admin/auth/user/").content.decode()
    assert "Practitioner/dr-1" in listed


def test_app_managers_create_staff_but_give_no_rights(as_it, it_manager, admin_user):
    repository.update("Practitioner", "dr-1", {"resourceType": "Practitioner", "id": "dr-1"})
    editors = staff("x").groups.model.objects.get(name="Resource editors")
    response = as_it.post("/admin/auth/user/add/", person_form(groups=[editors.pk]))
    assert response.status_code == 302
    user = User.objects.get(username="dr.careful")
    assert user.is_staff and not user.groups.exists()
    assert FhirUserLink.objects.get(user=user).reference == "Practitioner/dr-1"
    # not even their own rights, and no superuser's account
    own = as_it.get(f"/admin/auth/user/{it_manager.pk}/change/")
    assert own.status_code == 200 and 'name="is_superuser"' not in own.content.decode()
    assert as_it.post(f"/admin/auth/user/{admin_user.pk}/password/",
                      {"password1": "x" * 20, "password2": "x" * 20}).status_code == 403
    assert as_it.post(f"/admin/auth/user/{admin_user.pk}/delete/", {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=admin_user.pk).exists()


@pytest.mark.parametrize("reference, says", [
    ("Practitioner/nobody", "does not exist"),
    ("Observation/1", "must be Patient/ID"),
])
def test_a_bad_fhir_user_is_shown_next_to_the_field(as_it, reference, says):
    response = as_it.post("/admin/auth/user/add/", person_form(**{"fhir_user-0-fhir_user": reference}))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert says in " ".join(errors.get("fhir_user", [])), errors
    assert not User.objects.filter(username="dr.careful").exists()


def test_a_person_without_a_fhir_identity(as_it):
    response = as_it.post("/admin/auth/user/add/", person_form(**{"fhir_user-0-fhir_user": ""}))
    assert response.status_code == 302
    assert not FhirUserLink.objects.exists() and User.objects.filter(username="dr.careful").exists()


def test_the_fhir_user_page_offers_the_picker(as_it, it_manager):
    page = as_it.get(f"/admin/auth/user/{it_manager.pk}/change/").content.decode()
    assert 'data-picker-url="/admin/fhir-user-picker/"' in page and "admin_ui/picker.js" in page


def test_view_only_staff_cannot_create_people(as_viewer):
    assert as_viewer.post("/admin/auth/user/add/", person_form()).status_code == 403
    assert not User.objects.filter(username="dr.careful").exists()
