"""``outreach ensure_admin``: make sure an admin user exists.

The password comes from ``OUTREACH_ADMIN_PASSWORD`` (or ``_FILE``); when unset, one is generated
and printed once. An existing admin is left alone unless the variable is set. A given password
must pass AUTH_PASSWORD_VALIDATORS (length, similarity to the user name, common and numeric
passwords), as in the admin.
"""

from __future__ import annotations

import secrets
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from outreach.lib import env


class Command(BaseCommand):
    help = "Create the admin user if it does not exist (password from OUTREACH_ADMIN_PASSWORD)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--username", default=env.get_str("OUTREACH_ADMIN_USER", "admin"))

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = options["username"]
        password = env.get_str("OUTREACH_ADMIN_PASSWORD")
        user = User.objects.filter(username=username).first()
        if password:
            try:
                validate_password(password, user or User(username=username))
            except ValidationError as exc:
                raise CommandError(
                    f"OUTREACH_ADMIN_PASSWORD refused: {' '.join(exc.messages)}"
                ) from None
        if user is not None:
            if password:
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"admin user {username!r}: password set from the environment")
            else:
                self.stdout.write(f"admin user {username!r} exists")
            return
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"created admin user {username!r} with password: {password}\n"
                    "(shown once; set OUTREACH_ADMIN_PASSWORD to choose it)"
                )
            )
        else:
            self.stdout.write(f"created admin user {username!r} (password from the environment)")
