"""What the console shows beside its FHIR pages: apps, tokens, people (registered on the
console's site, replacing the plain admins that django-oauth-toolkit and auth register)."""
from __future__ import annotations

from django.contrib import admin
from oauth2_provider.models import Grant, IDToken

from admin_ui import people, tokens
from admin_ui.clients import ClientAdmin
from smart_auth.models import Client

for model in (Grant, IDToken):  # short-lived internals of the OAuth flows, not for staff
    if admin.site.is_registered(model):
        admin.site.unregister(model)
if admin.site.is_registered(Client):
    admin.site.unregister(Client)
admin.site.register(Client, ClientAdmin)
tokens.register(admin.site)
people.register(admin.site)
