"""A deal made directly from the web, as the API can (POST /api/deals): through
crm.services.deal_create with its DealInput, the account and contact found or created first,
all in one transaction so a refused deal leaves no account or contact behind."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from leakmap.crm import selectors, services
from leakmap.web.forms import DealCreateForm
from leakmap.web.views.common import apply_errors


def _on_fields(exc: ValidationError, fields: dict[str, str]) -> ValidationError:
    """A service's error about an account or contact, put on this form's field for it."""
    if not hasattr(exc, "error_dict"):
        return exc
    return ValidationError(
        {fields.get(field, field): errors for field, errors in exc.error_dict.items()}
    )


def _account(user, name: str, owner):
    if not name:
        return None
    found = selectors.visible_accounts(user).filter(name=name).order_by("id").first()
    if found is not None:
        return found
    try:
        return services.account_create(name=name, owner=owner)
    except ValidationError as exc:
        raise _on_fields(exc, {"name": "account_name"}) from exc


def _contact(user, data: dict, account, owner):
    name = data["contact_name"]
    if not name:
        return None
    found = (
        selectors.visible_contacts(user).filter(name=name, account=account).order_by("id").first()
    )
    if found is not None:
        return found
    try:
        return services.contact_create(
            name=name,
            account=account,
            email=data["contact_email"],
            phone=data["contact_phone"],
            owner=owner,
        )
    except ValidationError as exc:
        raise _on_fields(
            exc, {"name": "contact_name", "email": "contact_email", "phone": "contact_phone"}
        ) from exc


@login_required
def deal_create(request):
    form = DealCreateForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        owner = data["owner"]
        try:
            with transaction.atomic():
                account = _account(request.user, data["account_name"].strip(), owner)
                contact = _contact(request.user, data, account, owner)
                deal = services.deal_create(
                    services.DealInput(
                        name=data["name"],
                        owner=owner,
                        amount=data["amount"],
                        stage=data["stage"],
                        account=account,
                        contact=contact,
                        source=data["source"],
                        expected_close_date=data["expected_close_date"],
                    ),
                    by=request.user,
                )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, _("Deal “%(name)s” created.") % {"name": deal.name})
            return redirect("deal_detail", pk=deal.pk)
    return render(
        request,
        "web/deals/new.html",
        {"form": form},
        status=422 if form.errors else 200,
    )
