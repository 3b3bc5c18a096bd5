"""The SMART authorization server's routes, mounted at /auth (the issuer is `<origin>/auth`)."""
from __future__ import annotations

from django.urls import path

from smart_auth import views
from smart_auth.audit.oauth import audited
from smart_auth.ehr_launch import launch_view

app_name = "smart"
urlpatterns = [
    path("authorize", audited("authorize")(views.AuthorizeView.as_view()), name="authorize"),
    path("token", audited("token")(views.SmartTokenView.as_view()), name="token"),
    path("introspect", audited("introspect")(views.IntrospectView.as_view()), name="introspect"),
    path("revoke", audited("revoke")(views.SmartRevokeView.as_view()), name="revoke"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", views.LogoutView.as_view(), name="logout"),
    path("jwks", views.SmartJwksView.as_view(), name="jwks"),
    path(".well-known/openid-configuration", views.OpenIdConfigurationView.as_view(), name="oidc-configuration"),
    path("launch", launch_view, name="launch"),
]
