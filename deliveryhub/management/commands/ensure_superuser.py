"""Create the first superuser if there is none; a no-op afterwards.

Username and email: DELIVERYHUB_ADMIN_EMAIL (default admin@localhost). Password:
DELIVERYHUB_ADMIN_PASSWORD, or a generated one that is printed once, when the user is created,
and never again.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

DEFAULT_EMAIL = "admin@localhost"


class Command(BaseCommand):
    help = "Create the first superuser (from DELIVERYHUB_ADMIN_EMAIL / DELIVERYHUB_ADMIN_PASSWORD) if none exists."

    def handle(self, *args, **options):
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            self.stdout.write(f"Superuser exists: {existing.get_username()}")
            return

        email = os.environ.get("DELIVERYHUB_ADMIN_EMAIL", "").strip() or DEFAULT_EMAIL
        password = os.environ.get("DELIVERYHUB_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(15)
        fields = {User.USERNAME_FIELD: email}
        if User.USERNAME_FIELD != "email" and hasattr(User, "email"):
            fields["email"] = email
        try:
            validate_password(password, User(**fields))
        except ValidationError as exc:
            raise CommandError("DELIVERYHUB_ADMIN_PASSWORD is too weak: " + " ".join(exc.messages)) from None

        with transaction.atomic():
            if User.objects.filter(**{User.USERNAME_FIELD: email}).exists():
                raise CommandError(
                    f"A user named {email!r} exists but is not a superuser; "
                    "set DELIVERYHUB_ADMIN_EMAIL to another address or promote that user."
                )
            user = User.objects.create_superuser(password=password, **fields)

        if generated:
            bar = "=" * 64
            self.stdout.write(
                self.style.WARNING(
                    f"\n{bar}\n"
                    f"  Created the first superuser. This password is shown ONCE:\n\n"
                    f"      login:     {user.get_username()}\n"
                    f"      password:  {password}\n\n"
                    f"  Change it after logging in, or set DELIVERYHUB_ADMIN_PASSWORD\n"
                    f"  before the first run next time.\n"
                    f"{bar}\n"
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the first superuser {user.get_username()} (password from DELIVERYHUB_ADMIN_PASSWORD)."
                )
            )
