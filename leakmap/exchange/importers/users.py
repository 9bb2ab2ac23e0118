"""Import users (CONTRACT §2): logins by username, their role, team and manager."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from leakmap.accounts.models import Role, User
from leakmap.crm import bulk
from leakmap.exchange.importers.base import Importer, Row, _username_ok, choice_map


class UsersImporter(Importer):
    kind = "users"
    batch_size = 10**9  # a users file is small; managers may be named on later rows

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.roles = choice_map(Role.choices)
        self.seen: dict[str, int] = {}

    def parse(self, row: Row):
        username = self.text(row, "username", required=True, max_length=150)
        if username:
            try:
                _username_ok(username)
            except ValidationError:
                self.error(
                    row,
                    "username",
                    username,
                    _("not a valid username (letters, digits and @.+-_ only)"),
                )
                username = None
        if username and not self.unique(self.seen, row, "username", username):
            username = None
        rec = {
            "row": row,
            "username": username,
            "display_name": self.text(row, "display_name", max_length=150),
            "role": self.choice(row, "role", self.roles, Role.REP),
            "team": self.text(row, "team", max_length=100),
            "manager": self.text(row, "manager", max_length=150),
            "email": self.email(row, "email"),
        }
        return rec

    def batch(self, records: list) -> None:
        existing = {
            u.username: u
            for u in User.objects.filter(username__in=[r["username"] for r in records])
        }
        known = set(self.lookups.maps["owner"])
        for r in records:
            m = r["manager"]
            if m and m not in known and m not in self.seen:
                self.error(
                    r["row"], "manager", m, _("no such user in the database or in this file")
                )
            elif m and m == r["username"]:
                self.error(r["row"], "manager", m, _("a user cannot be their own manager"))
        if not self.writing:
            return
        new, updates, managers = [], [], {}
        for r in records:
            team_id = self.lookups.get("team", r["team"]) if r["team"] else None
            user = existing.get(r["username"])
            if user is None:
                user = User(username=r["username"], role=r["role"])
                new.append(user)
            else:
                updates.append(user)
            user.display_name = r["display_name"]
            user.role = r["role"]
            user.team_id = team_id
            user.email = r["email"]
            managers[r["username"]] = r["manager"] or None
        bulk.users_upsert(new=new, updates=updates, managers=managers)
        for u in new:
            self.lookups.maps["owner"][u.username] = u.pk
        self.created += len(new)
        self.updated += len(updates)
