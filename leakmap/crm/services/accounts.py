"""Accounts and contacts: create, edit, delete."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from leakmap.accounts.models import User
from leakmap.crm.models import Account, Contact, Industry
from leakmap.crm.services.common import _full_clean, _now


@transaction.atomic
def account_create(
    *,
    name: str,
    owner: User | None = None,
    industry: Industry | None = None,
    created_at: dt.datetime | None = None,
) -> Account:
    if not name or not name.strip():
        raise ValidationError({"name": _("An account needs a name.")})
    account = Account(
        name=name.strip(), owner=owner, industry=industry, created_at=_now(created_at)
    )
    _full_clean(account, exclude=["owner", "industry"])
    account.save()
    return account


@transaction.atomic
def account_update(*, account: Account, **fields) -> Account:
    allowed = {"name", "owner", "industry"}
    bad = fields.keys() - allowed
    if bad:
        raise ValidationError({f: _("This field cannot be changed.") for f in bad})
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError({"name": _("An account needs a name.")})
    for name, value in fields.items():
        setattr(account, name, value.strip() if name == "name" else value)
    _full_clean(account, exclude=["owner", "industry"])
    account.save()
    return account


@transaction.atomic
def contact_create(
    *,
    name: str,
    account: Account | None = None,
    email: str = "",
    phone: str = "",
    title: str = "",
    owner: User | None = None,
    created_at: dt.datetime | None = None,
) -> Contact:
    if not name or not name.strip():
        raise ValidationError({"name": _("A contact needs a name.")})
    contact = Contact(
        name=name.strip(),
        account=account,
        email=email,
        phone=phone,
        title=title,
        owner=owner,
        created_at=_now(created_at),
    )
    _full_clean(contact, exclude=["owner", "account"])
    contact.save()
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, **fields) -> Contact:
    allowed = {"name", "account", "email", "phone", "title", "owner"}
    bad = fields.keys() - allowed
    if bad:
        raise ValidationError({f: _("This field cannot be changed.") for f in bad})
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError({"name": _("A contact needs a name.")})
    for name, value in fields.items():
        setattr(contact, name, value.strip() if name == "name" else value)
    _full_clean(contact, exclude=["owner", "account"])
    contact.save()
    return contact


@transaction.atomic
def account_delete(*, account: Account) -> None:
    account.delete()  # deals and contacts keep existing without an account


@transaction.atomic
def contact_delete(*, contact: Contact) -> None:
    contact.delete()
