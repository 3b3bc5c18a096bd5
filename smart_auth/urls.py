"""The SMART authorization server's routes, mounted at /auth (the issuer is `<origin>/auth`)."""
from __future__ import annotations

from django.urls import path

from smart_auth.ehr_launch import launch_view

app_name = "smart"
urlpatterns: list = [
    path("launch", launch_view, name="launch"),
]
