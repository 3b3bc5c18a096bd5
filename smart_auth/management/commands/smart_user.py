"""`manage.py smart_user create`: a person who can sign in at the authorize screen.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html -- `--fhir-user`
links the person to the Patient, Practitioner or RelatedPerson they are (their fhirUser),
which must exist on this server. Prints the person as one JSON object.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from smart_auth.people import PersonError, create_person


class Command(BaseCommand):
    help = "Create people who sign in to authorize SMART apps."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create a person who can sign in")
        create.add_argument("--username", required=True)
        create.add_argument("--password", required=True)
        create.add_argument("--fhir-user", metavar="Patient/ID|Practitioner/ID|RelatedPerson/ID",
                            help="the FHIR resource the person is (must exist)")
        create.add_argument("--staff", action="store_true",
                            help="hospital staff (may use the admin and EHR launch)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = create_person(options["username"], options["password"], options["fhir_user"],
                                 options["staff"])
        except PersonError as exc:
            raise CommandError(str(exc)) from None
        link = getattr(user, "fhir_user", None)
        self.stdout.write(json.dumps({
            "id": user.pk,
            "username": user.get_username(),
            "staff": user.is_staff,
            "fhir_user": link.reference if link else None,
        }, indent=2))
