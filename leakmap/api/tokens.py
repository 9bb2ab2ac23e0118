"""API tokens: created and revoked by their user, stored as a SHA-256 digest.

A token reads `lmk_<prefix>_<secret>`. The prefix is random, unique and stored in clear so the
token is found with one indexed lookup; the whole token is compared by digest in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.api.models import ApiToken

PREFIX_LEN = 8
# last_used_at is a convenience for the user, not an audit log: refresh it at most this often so
# that every API call does not become a write (which would serialise readers on SQLite).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@transaction.atomic
def token_create(*, user: User, name: str, read_only: bool = False) -> tuple[ApiToken, str]:
    """A new token for `user` (read_only: it may only read). Returns the row and the clear
    token, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the token a name, e.g. the tool that uses it.")})
    if len(name) > 100:
        raise ValidationError({"name": _("At most 100 characters.")})
    while True:
        prefix = secrets.token_hex(PREFIX_LEN // 2)
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    clear = f"lmk_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, digest=_digest(clear), read_only=read_only
    )
    return token, clear


@transaction.atomic
def token_revoke(*, token: ApiToken, by: User) -> ApiToken:
    if token.user_id != by.pk:
        raise ValidationError({"token": _("You can only revoke your own tokens.")})
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_lookup(clear: str) -> ApiToken | None:
    """The active token (with its active user) that `clear` is, or None."""
    parts = (clear or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "lmk" or len(parts[1]) != PREFIX_LEN:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.digest, _digest(clear)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
