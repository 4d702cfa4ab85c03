#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
    if os.environ["DJANGO_SETTINGS_MODULE"] != "portal.settings.production":
        # The settings only read where the servers are; a command starts what it needs.
        from portal import embedded

        embedded.start_needed()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
