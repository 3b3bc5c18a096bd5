"""`manage.py smart_client create|list|show|disable|enable|rotate-secret|delete`: register SMART apps.

https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr -- hospital IT
registers each app from scripts or CI. Output is JSON (one object, or an array for `list`);
a client secret is printed once, when it is made, and stored only as a hash.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from smart_auth import registration
from smart_auth.models import Client


def _client(client_id: str) -> Client:
    try:
        return Client.objects.get(client_id=client_id)
    except Client.DoesNotExist:
        raise CommandError(f"no client with client_id {client_id!r}") from None


class Command(BaseCommand):
    help = "Register and manage SMART on FHIR client apps."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser("create", help="register an app; prints client_id (and client_secret)")
        create.add_argument("--name", required=True)
        # One or more values after the flag, and the flag may be repeated.
        create.add_argument("--redirect-uri", dest="redirect_uris", nargs="+", action="extend", default=[],
                            metavar="URI")
        create.add_argument("--public", action="store_true", help="a public app (no secret, PKCE only)")
        # Checked by the registration (not argparse choices) so a wrong value is one line too.
        create.add_argument("--grant-type", default=registration.AUTHORIZATION_CODE,
                            metavar="|".join(registration.GRANT_TYPES))
        create.add_argument("--scope", dest="scopes", nargs="+", action="extend", default=[], metavar="SCOPE",
                            help="scopes the app may be granted (default: any scope of its kind)")
        create.add_argument("--jwks", metavar="FILE", help="a JWKS file with the app's public keys")
        create.add_argument("--jwks-uri", metavar="URL", help="where the app publishes its JWKS (or --jwks)")
        create.add_argument("--launch-uri", metavar="URI", help="the app's EHR launch URL")
        create.add_argument("--purpose-of-use", default="", metavar="CODE",
                            help="v3 ActReason code recorded on the app's tokens (e.g. TREAT)")
        create.add_argument("--break-glass", action="store_true", help="the app may ask for ETREAT")

        actions.add_parser("list", help="every registered app, as a JSON array")
        for action, text in (("show", "one app's registration"), ("disable", "stop an app and its tokens"),
                             ("enable", "let a disabled app work again"),
                             ("rotate-secret", "a new client secret (printed once)"),
                             ("delete", "remove an app and its tokens")):
            actions.add_parser(action, help=text).add_argument("client_id", metavar="CLIENT_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            out: Any = self._create(options)
        elif action == "list":
            out = [registration.describe(c) for c in Client.objects.order_by("created", "id")]
        else:
            client = _client(options["client_id"])
            if action == "show":
                out = registration.describe(client)
            elif action in ("disable", "enable"):
                client.is_active = action == "enable"
                client.save(update_fields=["is_active", "updated"])
                out = registration.describe(client)
            elif action == "rotate-secret":
                try:
                    secret = registration.rotate_secret(client)
                except registration.RegistrationError as exc:
                    raise CommandError(str(exc)) from None
                out = {"client_id": client.client_id, "client_secret": secret}
            else:  # delete
                client.delete()
                out = {"client_id": options["client_id"], "deleted": True}
        self.stdout.write(json.dumps(out, indent=2))

    def _create(self, options: dict[str, Any]) -> dict[str, Any]:
        jwks = None
        if options["jwks"] and options["jwks_uri"]:
            raise CommandError("give --jwks or --jwks-uri, not both")
        if options["jwks"]:
            try:
                jwks = Path(options["jwks"]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not a text file"
                raise CommandError(f"--jwks {options['jwks']}: cannot be read ({reason})") from None
        try:
            made = registration.register(
                name=options["name"],
                redirect_uris=options["redirect_uris"],
                public=options["public"],
                grant_type=options["grant_type"],
                scopes=options["scopes"],
                jwks=jwks,
                jwks_uri=options["jwks_uri"],
                launch_uri=options["launch_uri"],
                purpose_of_use=options["purpose_of_use"],
                break_glass=options["break_glass"],
            )
        except registration.RegistrationError as exc:
            raise CommandError(str(exc)) from None
        out = registration.describe(made.client)
        if made.client_secret is not None:
            out["client_secret"] = made.client_secret
        return out
