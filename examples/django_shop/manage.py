#!/usr/bin/env python3
"""Django's command-line utility for the example shop (runserver, migrate, test, demo_data)."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as err:
        # The usual cause: a python3 from pyenv or a virtualenv, which cannot see Debian's python3-django.
        raise SystemExit(
            f"Cannot import Django with {sys.executable} ({err}). "
            "Use Debian's /usr/bin/python3 with python3-django, python3-jwt and python3-websockets."
        ) from err
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
