#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas.settings")
    # Commands (migrate, reconciles) get the long PostgreSQL timeouts; the
    # development server answers web requests and gets the short ones.
    os.environ.setdefault("DATABASE_TIMEOUTS", "web" if sys.argv[1:2] == ["runserver"] else "task")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
