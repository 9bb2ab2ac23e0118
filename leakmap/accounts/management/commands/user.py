from __future__ import annotations

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_ipv46_address
from django.db import transaction

from leakmap.accounts import lockout
from leakmap.accounts.models import Role, User
from leakmap.accounts.services import (
    password_generate,
    team_get_or_create,
    user_create,
    user_set_password,
)
from leakmap.errors import validation_message


class Command(BaseCommand):
    help = (
        "Manage logins: `leakmap user add USERNAME --role rep|manager|admin`, "
        "`leakmap user passwd USERNAME`, `leakmap user unlock USERNAME [--address IP]`."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="create a login")
        add.add_argument("username")
        add.add_argument("--role", required=True, choices=Role.values)
        add.add_argument("--team", default="")
        add.add_argument("--manager", default="", help="username of the user's manager")
        add.add_argument("--display-name", default="")
        add.add_argument("--email", default="")
        add.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (otherwise one is generated and printed)",
        )

        passwd = sub.add_parser("passwd", help="set a user's password")
        passwd.add_argument("username")
        passwd.add_argument("--password-stdin", action="store_true")

        unlock = sub.add_parser(
            "unlock",
            help="let a user (and/or a client address) sign in again before the cool-off ends",
        )
        unlock.add_argument("username", nargs="?", default="")
        unlock.add_argument(
            "--address",
            default="",
            help="also forget the failed sign-ins and API tokens from this IP address",
        )

    def handle(self, *args, action: str, **opts):
        if action == "add":
            self.add(**opts)
        elif action == "passwd":
            self.passwd(**opts)
        elif action == "unlock":
            self.unlock(**opts)

    def _password(self, from_stdin: bool, user: User) -> tuple[str, bool]:
        if from_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: no password on standard input", returncode=2)
            return password, False
        return password_generate(user), True

    def passwd(self, *, username, password_stdin, **_):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}", returncode=2)
        password, generated = self._password(password_stdin, user)
        try:
            user_set_password(user=user, password=password)
        except ValidationError as exc:
            raise CommandError(validation_message(exc), returncode=2) from exc
        self.stdout.write(f"password set for {user.username}")
        if generated:
            self.stdout.write(f"password: {password}")

    def add(self, *, username, role, team, manager, display_name, email, password_stdin, **_):
        candidate = User(username=username, display_name=display_name, email=email)
        password, generated = self._password(password_stdin, candidate)
        manager_user = None
        if manager:
            manager_user = User.objects.filter(username=manager).first()
            if manager_user is None:
                raise CommandError(f"--manager: no user named {manager!r}", returncode=2)
        try:
            with transaction.atomic():  # the team is created only if the user is
                user = user_create(
                    username=username,
                    role=role,
                    team=team_get_or_create(team) if team else None,
                    manager=manager_user,
                    display_name=display_name,
                    email=email,
                    password=password,
                )
        except ValidationError as exc:
            raise CommandError(validation_message(exc), returncode=2) from exc
        self.stdout.write(f"created {user.role} {user.username}")
        if generated:
            self.stdout.write(f"password: {password}")

    def unlock(self, *, username, address, **_):
        if not username and not address:
            raise CommandError("unlock: name a USERNAME, an --address, or both", returncode=2)
        if address:
            try:
                validate_ipv46_address(address)
            except ValidationError as exc:
                raise CommandError(
                    f"--address: {address!r} is not an IPv4 or IPv6 address", returncode=2
                ) from exc
        if username and not User.objects.filter(username=username).exists():
            raise CommandError(f"no user named {username!r}", returncode=2)
        removed = lockout.lockout_clear(username=username, address=address)
        who = " and ".join(x for x in (username, address) if x)
        if removed:
            self.stdout.write(f"unlocked {who}: {removed} failure record(s) removed")
        else:
            self.stdout.write(f"{who}: no failed sign-ins recorded, nothing to unlock")
