#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirproject.settings")
    from django.core.management import execute_from_command_line

    from fhirproject.preflight import run_checks

    run_checks(sys.argv)  # a bad setting or an unreachable database: one line, exit status 1
    execute_from_command_line(sys.argv)
