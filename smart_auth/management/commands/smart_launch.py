"""`manage.py smart_launch --patient ID [--encounter ID] [--minutes N]`: an EHR launch value.

https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch -- prints
{"launch": ..., "patient": ..., "expires": ...}; open the app's launch URL with
`iss=<FHIR base>&launch=<value>`.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from smart_auth.launches import DEFAULT_MINUTES, LaunchError, create_launch


class Command(BaseCommand):
    help = "Make an EHR launch value bound to a patient (and an encounter)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patient", required=True, metavar="ID")
        parser.add_argument("--encounter", default="", metavar="ID")
        parser.add_argument("--minutes", type=int, default=DEFAULT_MINUTES, metavar="N",
                            help=f"how long the value may be used (default {DEFAULT_MINUTES})")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            launch = create_launch(options["patient"], options["encounter"], options["minutes"])
        except LaunchError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(launch.as_json(), indent=2))
