"""The authorization server's endpoints under /auth, on django-oauth-toolkit's views.

https://hl7.org/fhir/smart-app-launch/app-launch.html -- authorize (GET and POST), token,
introspect (RFC 7662), revoke (RFC 7009), sign in and out, the JWKS and the OpenID
configuration. DOT and oauthlib do the OAuth work; SmartValidator holds SMART's rules; the
authorize screen here adds what needs a person: the audience, the EHR launch, the patient,
and which scopes they allow.
"""
from __future__ import annotations

import calendar
import hashlib
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import get_access_token_model, get_application_model
from oauth2_provider.views import JwksInfoView, RevokeTokenView, TokenView
from oauth2_provider.views.base import BaseAuthorizationView
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OauthlibRequest
from oauthlib.oauth2.rfc6749 import errors

from smart_auth import endpoints
from smart_auth.access import BREAK_THE_GLASS
from smart_auth.grants import find_launch, patient_exists, person_of, wants_patient
from smart_auth.models import TokenContext
from smart_auth.patients import find_patients
from smart_auth.scopes import SmartScopes, describe

# The parameters of an authorization request, carried through the consent form.
AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud", "launch",
                    "code_challenge", "code_challenge_method", "nonce")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class RequestRefused(Exception):
    """A SMART rule the authorization request breaks (reported to the app's redirect URI)."""

    def __init__(self, error: type[errors.OAuth2Error], description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


# The app's own POST authorization request comes from another site, so CSRF cannot apply to
# it; the person's decision on the consent form is checked with csrf_protect in `post`.
@method_decorator(csrf_exempt, name="dispatch")
class AuthorizeView(BaseAuthorizationView):
    """GET or POST /auth/authorize: validate, show the consent screen, record the decision."""

    template_name = "smart_auth/authorize.html"

    def handle_no_permission(self):
        if self.request.method == "POST" and "decision" not in self.request.POST:
            # Keep a POSTed authorization request across the sign-in page.
            params = {k: v for k, v in self.request.POST.items() if k in AUTHORIZE_PARAMS}
            return redirect_to_login(f"{self.request.path}?{urlencode(params)}", resolve_url(settings.LOGIN_URL))
        return super().handle_no_permission()

    def get(self, request, *args, **kwargs):
        return self.screen(request)

    def post(self, request, *args, **kwargs):
        if "decision" in request.POST:
            return csrf_protect(self.decide)(request)
        return self.screen(request)

    # -- validation shared by the screen and the decision -------------------------------------

    def _params(self, request):
        return request.GET if request.method == "GET" else request.POST

    def _validate(self, request):
        """(scopes, credentials, client, launch) of a valid request, or the error response."""
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, None)
        credentials.pop("request", None)
        if isinstance(credentials.get("ui_locales"), list):
            credentials["ui_locales"] = " ".join(credentials["ui_locales"])
        client = get_application_model().objects.get(client_id=credentials["client_id"])
        try:
            launch = self._check_smart_rules(request, credentials, scopes)
        except RequestRefused as refused:
            error = refused.error(description=refused.description, state=credentials.get("state"))
            return self.error_response(OAuthToolkitError(error, redirect_uri=credentials["redirect_uri"]), client)
        return scopes, credentials, client, launch

    def _check_smart_rules(self, request, credentials, scopes):
        params = self._params(request)
        if credentials.get("code_challenge_method") != "S256":
            raise RequestRefused(errors.InvalidRequestError, "PKCE with code_challenge_method=S256 is required")
        aud = params.get("aud", "")
        if aud.rstrip("/") != endpoints.fhir_base(request).rstrip("/"):
            raise RequestRefused(errors.InvalidRequestError,
                                 f"aud must be this server's FHIR base URL {endpoints.fhir_base(request)}")
        launch = None
        if params.get("launch"):
            launch = find_launch(params["launch"])
            if launch is None:
                raise RequestRefused(errors.InvalidRequestError, "the launch is unknown or has expired")
        person = person_of(request.user)
        if launch is not None and launch.patient and person.own_patient and launch.patient != person.own_patient:
            raise RequestRefused(errors.AccessDeniedError, "this launch is for another patient")
        if wants_patient(scopes) and not (launch and launch.patient) and not person.own_patient \
                and not self._may_pick_patient(request.user, person):
            raise RequestRefused(errors.InvalidScopeError,
                                 "patient scopes need a patient in context, and this person has none to choose")
        return launch

    @staticmethod
    def _may_pick_patient(user, person) -> bool:
        """Clinicians (Practitioner users) and staff choose the patient; others never do."""
        return person.fhir_user.startswith("Practitioner/") or (not person.fhir_user and user.is_staff)

    # -- the screen ---------------------------------------------------------------------------

    def screen(self, request, message: str = "", status: int = 200):
        checked = self._validate(request)
        if isinstance(checked, HttpResponse):
            return checked
        scopes, credentials, client, launch = checked
        params = self._params(request)
        person = person_of(request.user)
        fixed_patient = (launch.patient if launch and launch.patient else "") or person.own_patient
        picking = wants_patient(scopes) and not fixed_patient
        query = params.get("patient_search", "").strip()
        context = {
            "application": client,
            "scopes": [{"scope": s, "text": describe(s)} for s in scopes],
            "hidden": [(k, params[k]) for k in AUTHORIZE_PARAMS if params.get(k)],
            "fixed_patient": fixed_patient,
            "picking": picking,
            "patient_search": query,
            "patients": find_patients(request, query) if picking else [],
            "chosen_patient": params.get("patient", ""),
            "ticked": set(params.getlist("granted")) if "decision" in params else set(scopes),
            "message": message,
            "user": request.user,
        }
        return render(request, self.template_name, context, status=status)

    # -- the decision -------------------------------------------------------------------------

    def decide(self, request):
        checked = self._validate(request)
        if isinstance(checked, HttpResponse):
            return checked
        scopes, credentials, client, launch = checked
        if request.POST.get("decision") != "allow":
            return self._refuse(credentials, client, "the person denied access")
        ticked = set(request.POST.getlist("granted"))
        granted = [s for s in scopes if s in ticked]
        if not granted:
            return self._refuse(credentials, client, "the person allowed no scope")
        person = person_of(request.user)
        patient = ""
        if launch is not None and launch.patient:
            patient = launch.patient
        elif wants_patient(granted):
            patient = person.own_patient
            if not patient:
                patient = request.POST.get("patient", "").strip()
                if not patient or not self._may_pick_patient(request.user, person) or not patient_exists(patient):
                    return self.screen(request, "Choose the patient this app may see.", status=400)
        online = "online_access" in granted and "offline_access" not in granted
        credentials["smart_context"] = {
            "patient": patient,
            "encounter": launch.encounter if launch is not None else "",
            "need_patient_banner": bool(patient) and launch is None,
            "smart_style_url": settings.SMART_STYLE_URL,
            "fhir_user": person.fhir_user,
            "purpose_of_use": client.purpose_of_use,
            "online": online,
            "session_key": request.session.session_key or "" if online else "",
        }
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request=request, scopes=" ".join(granted), credentials=credentials, allow=True)
        except OAuthToolkitError as error:
            return self.error_response(error, client)
        return self.redirect(uri, client)

    def _refuse(self, credentials, client, description: str):
        error = errors.AccessDeniedError(description=description, state=credentials.get("state"))
        return self.error_response(OAuthToolkitError(error, redirect_uri=credentials["redirect_uri"]), client)

    def error_response(self, error, application, **kwargs):
        """Redirect errors to the app, except those about the app itself (an error page)."""
        redirect, response = OAuthLibMixin.error_response(self, error, **kwargs)
        if redirect:
            return self.redirect(response["url"], application)
        oauthlib_error = response["error"]
        return render(self.request, "smart_auth/error.html",
                      {"error": oauthlib_error.error, "description": oauthlib_error.description},
                      status=oauthlib_error.status_code)


class SmartTokenView(TokenView):
    """POST /auth/token: authorization_code, refresh_token and client_credentials grants."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        for name, value in NO_STORE.items():
            response[name] = value
        return response


class SmartRevokeView(RevokeTokenView):
    """POST /auth/revoke (RFC 7009): the client revokes one of its own tokens."""


@method_decorator(csrf_exempt, name="dispatch")
class IntrospectView(OAuthLibMixin, View):
    """POST /auth/introspect (RFC 7662), for clients that authenticate (Basic or private_key_jwt)."""

    def post(self, request, *args, **kwargs):
        core = self.get_oauthlib_core()
        uri, method, body, headers = core._extract_params(request)
        oauth_request = OauthlibRequest(uri, method, body, headers)
        try:
            authenticated = core.server.request_validator.authenticate_client(oauth_request)
        except errors.OAuth2Error as exc:
            return _oauth_error("invalid_client", exc.description, 401)
        client = oauth_request.client
        if not authenticated or client is None or client.is_public:
            return _oauth_error("invalid_client", "the client must authenticate (HTTP Basic or private_key_jwt)", 401)
        token_value = request.POST.get("token")
        if not token_value:
            return _oauth_error("invalid_request", "the token parameter is missing", 400)
        return JsonResponse(_introspect(request, token_value), headers=NO_STORE)


def _introspect(request, token_value: str) -> dict:
    checksum = hashlib.sha256(token_value.encode()).hexdigest()
    token = (get_access_token_model().objects.select_related("user", "application")
             .filter(token_checksum=checksum).first())
    if token is None or not token.is_valid():
        return {"active": False}
    if token.application is None or not token.application.is_active:
        return {"active": False}
    if token.user is not None and not token.user.is_active:
        return {"active": False}
    data = {
        "active": True,
        "scope": token.scope,
        "client_id": token.application.client_id,
        "token_type": "Bearer",
        "exp": calendar.timegm(token.expires.utctimetuple()),
        "iat": calendar.timegm(token.created.utctimetuple()),
    }
    if token.user is not None:
        data["username"] = token.user.get_username()
        data["sub"] = str(token.user.pk)
    context = TokenContext.objects.filter(access_token=token).first()
    if context is not None:
        if context.patient:
            data["patient"] = context.patient
        if context.encounter:
            data["encounter"] = context.encounter
        if context.fhir_user:
            data["fhirUser"] = endpoints.fhir_user_url(request, context.fhir_user)
        if context.purpose_of_use:
            data["purpose_of_use"] = context.purpose_of_use
            # Break the glass holds only while the client is registered for it (as enforced).
            data["break_glass"] = context.purpose_of_use == BREAK_THE_GLASS and token.application.break_glass
    return data


def _oauth_error(error: str, description: str, status: int) -> JsonResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="auth"'
    return JsonResponse({"error": error, "error_description": description}, status=status, headers=headers)


class SmartJwksView(JwksInfoView):
    """GET /auth/jwks: the public half of the id_token signing key (CORS open)."""


class OpenIdConfigurationView(View):
    """GET /auth/.well-known/openid-configuration, agreeing with the SMART configuration."""

    def get(self, request, *args, **kwargs):
        data = {
            "issuer": endpoints.issuer(request),
            "authorization_endpoint": endpoints.endpoint(request, "authorize"),
            "token_endpoint": endpoints.endpoint(request, "token"),
            "introspection_endpoint": endpoints.endpoint(request, "introspect"),
            "revocation_endpoint": endpoints.endpoint(request, "revoke"),
            "jwks_uri": endpoints.endpoint(request, "jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": SmartScopes().get_available_scopes(),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "fhirUser"],
            "code_challenge_methods_supported": ["S256"],
        }
        return JsonResponse(data, headers={"Access-Control-Allow-Origin": "*"})


class LoginView(auth_views.LoginView):
    """GET/POST /auth/login: the sign-in page the authorize endpoint sends people to."""

    template_name = "smart_auth/login.html"
    redirect_authenticated_user = False


class LogoutView(auth_views.LogoutView):
    """/auth/logout: GET asks, POST signs out (which ends online_access tokens)."""

    template_name = "smart_auth/logout.html"

    def get(self, request, *args, **kwargs):
        return render(request, self.template_name, {"signed_out": False})

    def post(self, request, *args, **kwargs):
        super().post(request, *args, **kwargs)
        return render(request, self.template_name, {"signed_out": True})
