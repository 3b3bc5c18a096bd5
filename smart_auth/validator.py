"""DOT's OAUTH2_VALIDATOR_CLASS: where SMART's rules plug into django-oauth-toolkit.

https://hl7.org/fhir/smart-app-launch/ -- client authentication (HTTP Basic for symmetric
clients, private_key_jwt for asymmetric ones, client_id alone for public ones; never a
secret in the body), exact redirect URIs, the `code` response type only, PKCE always, scopes
capped by the registration, single-use codes whose replay revokes what they issued, token
lifetimes capped, launch context carried from the code to every token (and its refreshes),
refresh tokens only for offline_access/online_access, and RS256 id_tokens with `fhirUser`.
"""
from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_grant_model,
    get_refresh_token_model,
    revoke_access_token,
)
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from smart_auth import assertions, endpoints, purpose
from smart_auth.audit.oauth import note_issued
from smart_auth.grants import check_grantable
from smart_auth.models import GrantContext, RedeemedCode, TokenContext, digest
from smart_auth.scopes import ScopeError

REFRESH_SCOPES = {"offline_access", "online_access"}
# How long a redeemed code's digest is kept so that a replay can still revoke its tokens.
REDEEMED_CODE_KEPT = timedelta(days=1)


class SmartValidator(OAuth2Validator):
    """SMART App Launch rules on top of DOT's validator."""

    # fhirUser goes into the id_token when openid was granted; get_additional_claims decides
    # (SMART: with the fhirUser scope, or profile for v1 apps).
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "fhirUser": "openid"}

    # -- client authentication --------------------------------------------------------------

    def client_authentication_required(self, request, *args, **kwargs):
        if _param(request, "client_assertion") or _param(request, "client_assertion_type"):
            return True
        if self._extract_basic_auth(request) or _param(request, "client_secret"):
            return True  # a secret in the body is refused by authenticate_client
        if not request.client_id or self._load_application(request.client_id, request) is None:
            return True  # nobody to trust: authentication is required, and fails
        return not request.client.is_public

    def authenticate_client(self, request, *args, **kwargs):
        assertion_type = _param(request, "client_assertion_type")
        assertion = _param(request, "client_assertion")
        if assertion_type or assertion:
            return self._authenticate_assertion(request, assertion_type, assertion)
        if _param(request, "client_secret"):
            raise errors.InvalidClientError(
                description="client_secret_post is not supported: send the secret with HTTP Basic",
                request=request)
        if not self._extract_basic_auth(request) or not self._authenticate_basic_auth(request):
            return False
        if request.client.is_public:
            return False  # a public client has no secret to show
        if request.client.jwks.strip() or request.client.jwks_uri:
            raise errors.InvalidClientError(
                description="this client registered keys: authenticate with private_key_jwt", request=request)
        return True

    def _authenticate_assertion(self, request, assertion_type, assertion) -> bool:
        if assertion_type != assertions.ASSERTION_TYPE or not assertion:
            raise errors.InvalidClientError(
                description=f"client_assertion_type must be {assertions.ASSERTION_TYPE} with a client_assertion",
                request=request)
        try:
            client_id = assertions.claimed_client_id(assertion)
            if request.client_id and request.client_id != client_id:
                raise assertions.AssertionError_("client_id differs from the client assertion's iss")
            client = self._load_application(client_id, request)
            if client is None:
                raise assertions.AssertionError_("the client assertion names an unknown or disabled client")
            if not (client.jwks.strip() or client.jwks_uri):
                raise assertions.AssertionError_("this client has no registered keys")
            assertions.verify(assertion, client, endpoints.endpoint(request, "token"))
        except assertions.AssertionError_ as exc:
            request.client = None
            raise errors.InvalidClientError(description=str(exc), request=request) from None
        request.client_id = client_id
        _header, claims = assertions.unverified_parts(assertion)  # verified just above
        try:
            stated = purpose.from_assertion(claims)
            if stated:
                purpose.check_allowed(stated, client.break_glass)
        except purpose.PurposeError as exc:
            raise errors.InvalidRequestError(description=str(exc), request=request) from None
        request.stated_purpose = stated
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        client = self._load_application(client_id, request)
        return client is not None and client.is_public

    # -- the authorization request ----------------------------------------------------------

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        # Exact string match with a registered URI (no loopback-port or other leniency).
        return redirect_uri in request.client.redirect_uris.split()

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        # The code flow only: no implicit, no hybrid (SMART App Launch 2.x).
        return response_type == "code" and client.allows_grant_type(AbstractApplication.GRANT_AUTHORIZATION_CODE)

    def is_pkce_required(self, client_id, request):
        return True

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        try:
            check_grantable(client, list(scopes))
        except ScopeError as exc:
            raise errors.InvalidScopeError(description=str(exc), request=request) from None
        return True

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return []  # SMART clients always name their scopes

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        if request.code_challenge_method != "S256":
            raise errors.InvalidRequestError(description="PKCE with code_challenge_method=S256 is required",
                                             request=request)
        with transaction.atomic():
            grant = self._create_authorization_code(request, code)
            GrantContext.objects.create(grant=grant, **(getattr(request, "smart_context", None) or {}))

    # -- the code exchange ------------------------------------------------------------------

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        Grant = get_grant_model()
        grant = Grant.objects.filter(code=code, application=client).first()
        if grant is None:
            _revoke_redeemed(code)  # a replayed code: what it issued is revoked too
            return False
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        context = GrantContext.objects.filter(grant=grant).first()
        request.smart_context = context.context() if context else {}
        return True

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        issued = getattr(request, "smart_access_token", None)
        deleted, _ = get_grant_model().objects.filter(code=code, application=request.client).delete()
        if not deleted:
            # Another exchange of the same code won the race: both lose their tokens.
            if issued is not None:
                revoke_access_token(issued)
            _revoke_redeemed(code)
            raise errors.InvalidGrantError(description="the authorization code was already used", request=request)
        family = (get_refresh_token_model().objects.filter(access_token=issued)
                  .values_list("token_family", flat=True).first() if issued is not None else None)
        now = timezone.now()
        RedeemedCode.objects.filter(expires__lt=now).delete()
        RedeemedCode.objects.create(code_digest=digest(code), access_token_id=getattr(issued, "pk", None),
                                    token_family=family, expires=now + REDEEMED_CODE_KEPT)

    # -- refresh tokens ---------------------------------------------------------------------

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        rt = request.refresh_token_instance
        if rt.access_token.expires + timedelta(seconds=client.refresh_token_lifetime) <= timezone.now():
            return False
        context = TokenContext.objects.filter(access_token=rt.access_token).first()
        request.smart_context = context.context() if context else {}
        if context is not None and context.online and not _session_alive(context.session_key):
            return False  # online_access ends with the sign-in session it came from
        return True

    # -- tokens -----------------------------------------------------------------------------

    def save_bearer_token(self, token, request, *args, **kwargs):
        client = request.client
        if request.grant_type == "client_credentials":
            cap = settings.SMART_BACKEND_TOKEN_SECONDS
        else:
            cap = settings.SMART_ACCESS_TOKEN_SECONDS
        token["expires_in"] = min(client.access_token_lifetime, cap)
        if not REFRESH_SCOPES & set(token.get("scope", "").split()):
            token.pop("refresh_token", None)
        super().save_bearer_token(token, request, *args, **kwargs)
        context = getattr(request, "smart_context", None) or {}
        if context.get("patient"):
            token["patient"] = context["patient"]
            token["need_patient_banner"] = bool(context.get("need_patient_banner"))
        if context.get("encounter"):
            token["encounter"] = context["encounter"]
        if context.get("fhir_context"):
            token["fhirContext"] = context["fhir_context"]
        if context.get("smart_style_url"):
            token["smart_style_url"] = context["smart_style_url"]

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        request.smart_access_token = access_token
        context = dict(getattr(request, "smart_context", None) or {})
        # The purpose a backend service states in its assertion, else the one the grant
        # carries, else the app's registered default.
        stated = getattr(request, "stated_purpose", "")
        if stated:
            context["purpose_of_use"] = stated
        elif not context.get("purpose_of_use") and request.client.purpose_of_use:
            context["purpose_of_use"] = request.client.purpose_of_use
        if any(context.values()):
            TokenContext.objects.create(access_token=access_token, **context)
        note_issued(access_token.pk, context.get("patient", ""))  # its id (never its value) for the audit record
        return access_token

    # -- OpenID Connect ---------------------------------------------------------------------

    def get_oidc_issuer_endpoint(self, request):
        return endpoints.issuer(request)

    def get_additional_claims(self, request):
        fhir_user = (getattr(request, "smart_context", None) or {}).get("fhir_user")
        if fhir_user and {"fhirUser", "profile"} & set(request.scopes or ()):
            return {"fhirUser": endpoints.fhir_user_url(request, fhir_user)}
        return {}

    def finalize_id_token(self, id_token, token, token_handler, request):
        # Every SMART client gets RS256 id_tokens signed with the server's key, whatever
        # algorithm its DOT row names (set on this in-memory instance only, never saved).
        request.client.algorithm = AbstractApplication.RS256_ALGORITHM
        return super().finalize_id_token(id_token, token, token_handler, request)

    def _get_client_by_audience(self, audience):
        # DOT's hook for finding the key that checks an id_token: the server's RS256 key too.
        client = super()._get_client_by_audience(audience)
        if client is not None:
            client.algorithm = AbstractApplication.RS256_ALGORITHM
        return client

    def is_origin_allowed(self, client_id, origin, request, *args, **kwargs):
        """Browser apps may call the token endpoint from the origin of a registered URI."""
        from urllib.parse import urlsplit

        uris = request.client.redirect_uris.split() + ([request.client.launch_uri] if request.client.launch_uri else [])
        origins = {f"{p.scheme}://{p.netloc}" for p in map(urlsplit, uris)}
        return origin in origins


def _param(request, name: str):
    """A request parameter oauthlib does not model (client_assertion...), or None."""
    return getattr(request, name, None)


def _session_alive(session_key: str) -> bool:
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore
    return store().exists(session_key)


def _revoke_redeemed(code: str) -> None:
    """Revoke every token issued from a code that was already exchanged (RFC 6749 4.1.2)."""
    redeemed = RedeemedCode.objects.filter(code_digest=digest(code)).first()
    if redeemed is None:
        return
    if redeemed.token_family:
        get_refresh_token_model().revoke_family(redeemed.token_family)
    if redeemed.access_token_id:
        token = get_access_token_model().objects.filter(pk=redeemed.access_token_id).first()
        if token is not None:
            revoke_access_token(token)
