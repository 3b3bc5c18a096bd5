"""The SMART authorization server's routes, mounted at /auth (the issuer is `<origin>/auth`)."""
from __future__ import annotations

app_name = "smart"
urlpatterns: list = []
