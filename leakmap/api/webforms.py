"""Web-to-lead intake: what a public form submission becomes.

A submission is rate limited per IP, checked for bots (honeypot; a token signed for this form
when its page was served, at least the form's minimum fill time and at most
LEAKMAP_WEBFORM_TOKEN_MAX_AGE old), validated, and then either creates a lead through
`services.lead_create` or — when a lead with that e-mail or phone exists — logs an activity on
that lead instead of a duplicate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from leakmap.accounts.models import Role, User
from leakmap.api.models import WebForm
from leakmap.crm import services
from leakmap.crm.models import Lead

logger = logging.getLogger(__name__)

HONEYPOT = "website"
TIMESTAMP = "_ts"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
# Per-IP budget for public submissions across all forms: enough for a person correcting a
# typo a few times, far too little for a bot.
RATE_LIMIT = 10
RATE_WINDOW = 600
MAX_LENGTHS = {
    "name": 200,
    "company": 200,
    "email": 254,
    "phone": 50,
    "title": 100,
    "product": 200,
    "region": 100,
    "message": 5000,
}


class Rejected(Exception):
    """A submission refused before validation: bot-like, or over the rate limit."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass
class Outcome:
    lead: Lead
    created: bool
    errors: dict[str, str] = field(default_factory=dict)


def public_url(path: str, request=None) -> str:
    """`path` as an absolute URL other sites can reach: under LEAKMAP_SITE_URL when it is set,
    else under the host the request came to (never the development default's port)."""
    if settings.SITE_URL_CONFIGURED or request is None:
        return settings.SITE_URL + path
    return request.build_absolute_uri(path)


def sign_timestamp(form: WebForm, now: float | None = None) -> str:
    """The anti-bot token of a served form: which form, and when it was served, signed (so a
    token served with form A is refused on form B, and its age cannot be forged)."""
    return signing.dumps(
        {"f": form.pk, "t": int(now if now is not None else time.time())}, salt="leakmap.webform"
    )


def check_rate(ip: str, now: float | None = None) -> None:
    """Fixed window per IP in Django's cache; raises Rejected(429) with the seconds to wait."""
    now = time.time() if now is None else now
    window = int(now // RATE_WINDOW)
    key = f"leakmap:webform:{ip}:{window}"
    cache.add(key, 0, RATE_WINDOW + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, RATE_WINDOW + 5)
        count = 1
    if count > RATE_LIMIT:
        retry_after = int((window + 1) * RATE_WINDOW - now) + 1
        raise Rejected(
            429,
            _("Too many submissions from your address; try again in %(s)s seconds.")
            % {"s": retry_after},
            retry_after=retry_after,
        )


def check_bot(form: WebForm, data, now: float | None = None) -> None:
    if data.get(HONEYPOT):
        raise Rejected(400, _("The submission was rejected."))
    try:
        stamp = signing.loads(data.get(TIMESTAMP, ""), salt="leakmap.webform")
    except signing.BadSignature as exc:
        raise Rejected(400, _("The form is out of date; reload the page and try again.")) from exc
    served = stamp.get("t") if isinstance(stamp, dict) else None
    if not isinstance(served, int) or stamp.get("f") != form.pk:
        raise Rejected(400, _("The form is out of date; reload the page and try again."))
    now = time.time() if now is None else now
    # A token is good for LEAKMAP_WEBFORM_TOKEN_MAX_AGE seconds after the page was served (0:
    # for ever, for HTML pasted into other sites long ago), and never from the future beyond a
    # minute of clock difference between servers.
    max_age = settings.LEAKMAP_WEBFORM_TOKEN_MAX_AGE
    if (max_age and now - served > max_age) or served > now + 60:
        raise Rejected(
            400,
            _(
                "This form was loaded too long ago and has expired; reload the page, "
                "fill it in again and send it."
            ),
        )
    if now - served < form.min_fill_seconds:
        raise Rejected(400, _("That was too fast; please check the form and send it again."))


def clean(form: WebForm, data) -> tuple[dict, dict[str, str]]:
    """The submitted values of the form's fields, and the errors keyed by field."""
    values: dict = {}
    errors: dict[str, str] = {}
    for name in form.shown_fields:
        raw = (data.get(name) or "").strip()
        if "\x00" in raw:
            errors[name] = _("Invalid characters.")
            continue
        if name == "budget":
            if raw:
                try:
                    value = Decimal(raw.replace(",", ""))
                except InvalidOperation:
                    errors[name] = _("Enter a number.")
                    continue
                if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
                    errors[name] = _("Enter an amount between 0 and 999,999,999,999.")
                    continue
                values[name] = value.quantize(Decimal("0.01"))
            continue
        if len(raw) > MAX_LENGTHS[name]:
            errors[name] = _("At most %(n)s characters.") % {"n": MAX_LENGTHS[name]}
            continue
        values[name] = raw
    if not values.get("name") and "name" not in errors:
        errors["name"] = _("Please tell us your name.")
    if values.get("email"):
        try:
            validate_email(values["email"])
        except ValidationError:
            errors["email"] = _("Enter a valid e-mail address.")
    contact_fields = [f for f in ("email", "phone") if f in form.shown_fields]
    if (
        contact_fields
        and not any(values.get(f) for f in contact_fields)
        and not errors.keys()
        & {
            "email",
            "phone",
        }
    ):
        errors[contact_fields[0]] = _("Leave an e-mail address or a phone number.")
    return values, errors


def _tracking(data, query, referer_header: str) -> tuple[dict[str, str], str]:
    """UTM parameters from the form, else from the page URL it was posted with, else from the
    referring page's query string; the referrer from the form, else the Referer header."""
    referrer = (data.get("referrer") or referer_header or "").strip()[:500]
    from_referrer = parse_qs(urlsplit(referrer).query) if referrer else {}
    utm = {}
    for key in UTM_KEYS:
        value = data.get(key) or query.get(key) or (from_referrer.get(key) or [""])[0]
        utm[key] = value.replace("\x00", "").strip()[:100]
    return utm, referrer.replace("\x00", "")


def _existing_lead(values: dict) -> Lead | None:
    # A system lookup across all owners (the submitter is not a user): duplicates must be found
    # wherever they live.
    q = Q()
    if values.get("email"):
        q |= Q(email__iexact=values["email"])
    if values.get("phone"):
        q |= Q(phone=values["phone"])
    if not q:
        return None
    return Lead.objects.filter(q).select_related("owner").order_by("created_at", "id").first()


def _activity_owner(lead: Lead, form: WebForm) -> User | None:
    """Activities need an owner: the lead's, else the form's, else the first admin."""
    return (
        lead.owner
        or form.owner
        or User.objects.filter(is_active=True)
        .filter(Q(role=Role.ADMIN) | Q(is_superuser=True))
        .order_by("id")
        .first()
    )


def _summary(form: WebForm, values: dict, utm: dict, referrer: str) -> str:
    lines = [f"{k}: {v}" for k, v in values.items() if v not in ("", None)]
    lines += [f"{k}: {v}" for k, v in utm.items() if v]
    if referrer:
        lines.append(f"referrer: {referrer}")
    return "\n".join(lines)


def lead_owner_plan(form: WebForm) -> dict:
    """How a form's new lead gets its owner (lead_create's keywords; the owner itself goes in
    LeadInput only for a form that names an owner and not the rules).

    A form with an owner and "use assignment rules" off gives every lead to that owner. Any
    other form sends its leads through the assignment rules, so a form left at its defaults
    (no owner) still reaches a rep; when no rule assigns, the form's owner gets the lead if it
    names one, else the lead stays unassigned, where managers see it (their Today lists it)."""
    if form.owner_id and not form.use_assignment_rules:
        return {"use_assignment_rules": False}
    return {"use_assignment_rules": True, "fallback_owner": form.owner}


def submit(form: WebForm, data, *, query, referer_header: str) -> Outcome:
    """Turn a checked submission into a lead or an activity. Raises ValidationError."""
    values, errors = clean(form, data)
    if errors:
        raise ValidationError(errors)
    utm, referrer = _tracking(data, query, referer_header)
    message = values.pop("message", "")
    with transaction.atomic():
        existing = _existing_lead(values)
        if existing is not None:
            owner = _activity_owner(existing, form)
            if owner is not None:
                services.activity_log(
                    services.ActivityInput(
                        owner=owner,
                        kind="note",
                        lead=existing,
                        subject=_("Web form “%(f)s” submitted again") % {"f": form.name},
                        notes="\n\n".join(
                            x for x in (message, _summary(form, values, utm, referrer)) if x
                        ),
                    )
                )
            return Outcome(lead=existing, created=False)
        lead = services.lead_create(
            services.LeadInput(
                name=values["name"],
                company=values.get("company", ""),
                email=values.get("email", ""),
                phone=values.get("phone", ""),
                title=values.get("title", ""),
                product=values.get("product", ""),
                region=values.get("region", ""),
                budget=values.get("budget"),
                source=form.source,
                owner=form.owner if form.owner_id and not form.use_assignment_rules else None,
                utm=utm,
                referrer=referrer,
            ),
            **lead_owner_plan(form),
        )
        if message:
            owner = _activity_owner(lead, form)
            if owner is not None:
                services.activity_log(
                    services.ActivityInput(
                        owner=owner,
                        kind="note",
                        lead=lead,
                        subject=_("Message from web form “%(f)s”") % {"f": form.name},
                        notes=message,
                    )
                )
    return Outcome(lead=lead, created=True)


def form_context(
    form: WebForm,
    *,
    action: str,
    values=None,
    errors=None,
    utm: dict[str, str] | None = None,
    referrer: str = "",
) -> dict:
    """What api/_form.html needs: the hosted page and the admin's embed snippet share it."""
    from leakmap.api.models import FORM_FIELDS

    values = values or {}
    errors = errors or {}
    return {
        "form": form,
        "action": action,
        "rows": [
            {
                "name": name,
                "label": FORM_FIELDS[name],
                "value": values.get(name, ""),
                "error": errors.get(name, ""),
            }
            for name in form.shown_fields
        ],
        "timestamp": sign_timestamp(form),
        "errors": errors,
        "utm": utm or {},
        "referrer": referrer,
        "honeypot": HONEYPOT,
    }
