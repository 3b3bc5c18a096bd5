"""Access and refresh tokens in the console: list per app and per person, revoke.

Only the SHA-256 of a token is stored (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE); the console shows
the first characters of that digest to tell tokens apart, never a token. Revoking goes
through django-oauth-toolkit's own `revoke()`, as /auth/revoke does.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

HINT = 10


def hint(digest: str | None) -> str:
    return f"sha256:{digest[:HINT]}..." if digest else ""


class TokenAdmin(admin.ModelAdmin):
    list_select_related = ["application", "user"]
    list_filter = [("application", admin.RelatedOnlyFieldListFilter), ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "application__name", "application__client_id"]
    show_full_result_count = False
    actions = ["revoke_selected"]
    exclude = ["token", "token_checksum"]

    @admin.display(description="Token (digest)")
    def digest(self, token) -> str:
        return hint(token.token_checksum)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a token is revoked, never edited

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoking is the one way to remove a token
        return actions

    @admin.action(description="Revoke the selected tokens", permissions=["delete"])
    def revoke_selected(self, request, queryset) -> None:
        n = 0
        for token in queryset:
            token.revoke()
            n += 1
        messages.success(request, f"Revoked {n} token{'s' if n != 1 else ''}.")

    def delete_model(self, request, obj) -> None:
        obj.revoke()

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset:
            token.revoke()


class AccessTokenAdmin(TokenAdmin):
    list_display = ["digest", "application", "user", "scope", "expires", "active"]
    readonly_fields = ["digest", "application", "user", "scope", "expires", "created", "source_refresh_token",
                       "id_token"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created")

    @admin.display(boolean=True, description="Active")
    def active(self, token: AccessToken) -> bool:
        return token.expires > timezone.now()


class RefreshTokenAdmin(TokenAdmin):
    list_display = ["digest", "application", "user", "created", "revoked"]
    readonly_fields = ["digest", "application", "user", "created", "revoked", "access_token", "token_family"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created")

    @admin.action(description="Revoke the selected refresh tokens", permissions=["delete"])
    def revoke_selected(self, request, queryset) -> None:
        n = 0
        for token in queryset.filter(revoked__isnull=True):
            token.revoke()
            n += 1
        messages.success(request, f"Revoked {n} refresh token{'s' if n != 1 else ''}.")

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset.filter(revoked__isnull=True):
            token.revoke()


def register(site) -> None:
    for model, model_admin in ((AccessToken, AccessTokenAdmin), (RefreshToken, RefreshTokenAdmin)):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
