"""The demo company: six months of a small sales team, generated with a fixed seed and loaded
through the same importer a user's files go through."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from leakmap.accounts.models import Role, User
from leakmap.accounts.services import password_generate, user_create
from leakmap.crm.models import Lead
from leakmap.exchange.columns import FILE_NAMES, IMPORT_ORDER
from leakmap.exchange.generator import generate, local_now

DEMO_SEED = 20260101
DEMO_LEADS = 2000
# The logins the demo prints: the two team managers and one rep (小王, whose leak shows).
DEMO_LOGINS = ["zhoujingli", "wujingli", "xiaowang"]


@transaction.atomic
def load_demo(*, today: dt.date | None = None) -> list[tuple[str, str, str]] | None:
    """Load the demo company unless the database already has leads. Returns the logins
    created as (username, role, password), or None when nothing was loaded."""
    if Lead.objects.exists():
        return None
    today = today or timezone.localdate()
    with tempfile.TemporaryDirectory(prefix="leakmap-demo-") as tmp:
        generate(tmp, leads=DEMO_LEADS, seed=DEMO_SEED, until=today, now=local_now())
        for kind in IMPORT_ORDER:
            call_command(
                "import_data", kind, str(Path(tmp) / FILE_NAMES[kind]), stdout=io.StringIO()
            )
    logins: list[tuple[str, str, str]] = []
    if not User.objects.filter(username="admin").exists():
        password = password_generate(User(username="admin", display_name="管理员"))
        user_create(username="admin", role=Role.ADMIN, display_name="管理员", password=password)
        logins.append(("admin", Role.ADMIN, password))
    for user in User.objects.filter(username__in=DEMO_LOGINS).order_by("role", "username"):
        password = password_generate(user)
        user.set_password(password)
        user.save(update_fields=["password"])
        logins.append((user.username, user.role, password))
    return logins
