"""Request and response bodies of the REST API.

Every input is bounded the way the database is (lengths, 64-bit ids, 14.2 money, time-zone-aware
datetimes that fit in UTC, no NUL characters), so bad input is a 422 naming the field instead of a
database error.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal

from django.utils import timezone
from ninja import Schema
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    model_validator,
)

from leakmap.exchange.limits import happened_problem

MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
NO_NUL = r"^[^\x00]*$"


def Text(max_length: int, min_length: int = 0):  # noqa: N802 — reads like a type
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=NO_NUL)]


def _fits_utc(value: dt.datetime) -> dt.datetime:
    # 9999-12-31T23:00-05:00 is valid ISO 8601 but overflows once stored in UTC.
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError("out of range once converted to UTC") from exc


def _iso_only(value):
    # pydantic would also read 0.5 or "1700000000" as a Unix time; the schema says ISO 8601.
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("Expected an ISO 8601 date or date-time, e.g. 2026-01-31T09:00:00+08:00")
    return value


When = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_fits_utc)]


def _happened(value: dt.datetime) -> dt.datetime:
    # The bounds imports apply too (CONTRACT §2): from 2000-01-01 to now.
    problem = happened_problem(value, timezone.now())
    if problem:
        raise ValueError(problem)
    return value


# The time something happened (created_at, done_at, when a deal moved or a lead converted);
# plans (due_at, next_follow_up) stay `When` and may lie ahead.
Happened = Annotated[When, AfterValidator(_happened)]
Day = Annotated[dt.date, BeforeValidator(_iso_only)]
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2),
]
# Money leaves as a JSON number (CONTRACT §1), not as the string pydantic gives a Decimal.
MoneyOut = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="always")]
Username = Text(150, 1)
Name = Text(200, 1)
LookupName = Text(100)


class Body(Schema):
    """A request body: a JSON object, never a list or a scalar that happens to have no fields
    the schema requires."""

    @model_validator(mode="before")
    @classmethod
    def _object_only(cls, data):
        raw = getattr(data, "_obj", data)  # ninja wraps input in a DjangoGetter
        if not isinstance(raw, dict):
            raise ValueError("Expected a JSON object")
        return data


class ErrorItem(Schema):
    field: str | None
    message: str


class ErrorOut(Schema):
    detail: list[ErrorItem]


# --- Leads ----------------------------------------------------------------------------------


class LeadIn(Body):
    name: Name
    company: Text(200) = ""
    email: Text(254) = ""
    phone: Text(50) = ""
    source: LookupName | None = None
    industry: LookupName | None = None
    title: Text(100) = ""
    budget: Money | None = None
    product: Text(200) = ""
    region: Text(100) = ""
    owner: Username | None = Field(None, description="Username; defaults to the caller.")
    external_id: Text(100, 1) | None = None
    created_at: Happened | None = None
    utm_source: Text(100) = ""
    utm_medium: Text(100) = ""
    utm_campaign: Text(100) = ""
    referrer: Text(500) = ""


class LeadPatch(Body):
    name: Name | None = None
    company: Text(200) | None = None
    email: Text(254) | None = None
    phone: Text(50) | None = None
    source: LookupName | None = None
    industry: LookupName | None = None
    title: Text(100) | None = None
    budget: Money | None = None
    product: Text(200) | None = None
    region: Text(100) | None = None
    owner: Username | None = None
    status: Literal["new", "contacted", "qualified"] | None = None


class LeadOut(Schema):
    id: int
    external_id: str | None
    name: str
    company: str
    email: str
    phone: str
    source: str | None
    industry: str | None
    title: str
    budget: MoneyOut | None
    product: str
    region: str
    owner: str | None
    status: str
    created_at: dt.datetime
    converted_at: dt.datetime | None
    disqualified_reason: str
    first_contacted_at: dt.datetime | None
    utm_source: str
    utm_medium: str
    utm_campaign: str
    referrer: str

    @staticmethod
    def resolve_source(obj) -> str | None:
        return obj.source.name if obj.source_id else None

    @staticmethod
    def resolve_industry(obj) -> str | None:
        return obj.industry.name if obj.industry_id else None

    @staticmethod
    def resolve_owner(obj) -> str | None:
        return obj.owner.username if obj.owner_id else None


class ConvertIn(Body):
    deal_name: Text(200) = ""
    amount: Money | None = None
    account_id: Id | None = None
    account_name: Text(200) = ""
    contact_name: Text(200) = ""
    expected_close_date: Day | None = None
    stage: Text(50, 1) | None = Field(None, description="Open stage key; the first by default.")
    owner: Username | None = None
    at: Happened | None = None


class DisqualifyIn(Body):
    reason: Text(200, 1)


# --- Deals ----------------------------------------------------------------------------------


class DealIn(Body):
    name: Name
    amount: Money = Decimal("0")
    stage: Text(50, 1) | None = Field(None, description="Open stage key; the first by default.")
    owner: Username | None = Field(None, description="Username; defaults to the caller.")
    lead_id: Id | None = None
    account_id: Id | None = None
    contact_id: Id | None = None
    source: LookupName | None = None
    industry: LookupName | None = None
    expected_close_date: Day | None = None
    next_follow_up: When | None = None
    created_at: Happened | None = None
    external_id: Text(100, 1) | None = None


class DealPatch(Body):
    name: Name | None = None
    amount: Money | None = None
    owner: Username | None = None
    account_id: Id | None = None
    contact_id: Id | None = None
    source: LookupName | None = None
    industry: LookupName | None = None
    expected_close_date: Day | None = None
    next_follow_up: When | None = None


class DealOut(Schema):
    id: int
    external_id: str | None
    name: str
    amount: MoneyOut
    stage: str
    stage_kind: str
    owner: str
    source: str | None
    industry: str | None
    lead_id: int | None
    account_id: int | None
    contact_id: int | None
    created_at: dt.datetime
    expected_close_date: dt.date | None
    closed_at: dt.datetime | None
    lost_reason: str | None
    competitor: str | None
    lost_notes: str
    next_follow_up: dt.datetime | None
    stage_entered_at: dt.datetime | None
    last_follow_up_at: dt.datetime | None
    follow_up_count: int
    needs_attention: bool

    @staticmethod
    def resolve_stage(obj) -> str:
        return obj.stage.key

    @staticmethod
    def resolve_stage_kind(obj) -> str:
        return obj.stage.kind

    @staticmethod
    def resolve_owner(obj) -> str:
        return obj.owner.username

    @staticmethod
    def resolve_source(obj) -> str | None:
        return obj.source.name if obj.source_id else None

    @staticmethod
    def resolve_industry(obj) -> str | None:
        return obj.industry.name if obj.industry_id else None

    @staticmethod
    def resolve_lost_reason(obj) -> str | None:
        return obj.lost_reason.name if obj.lost_reason_id else None

    @staticmethod
    def resolve_competitor(obj) -> str | None:
        return obj.competitor.name if obj.competitor_id else None


class MoveIn(Body):
    stage: Text(50, 1)
    at: Happened | None = None
    lost_reason: LookupName | None = None
    competitor: LookupName | None = None
    notes: Text(5000) = ""


class WonIn(Body):
    at: Happened | None = None


class LostIn(Body):
    lost_reason: Text(100, 1)
    competitor: LookupName | None = None
    notes: Text(5000) = ""
    at: Happened | None = None


# --- Accounts and contacts ------------------------------------------------------------------


class AccountIn(Body):
    name: Name
    industry: LookupName | None = None
    owner: Username | None = Field(None, description="Username; defaults to the caller.")
    created_at: Happened | None = None


class AccountPatch(Body):
    name: Name | None = None
    industry: LookupName | None = None
    owner: Username | None = None


class AccountOut(Schema):
    id: int
    name: str
    industry: str | None
    owner: str | None
    created_at: dt.datetime

    @staticmethod
    def resolve_industry(obj) -> str | None:
        return obj.industry.name if obj.industry_id else None

    @staticmethod
    def resolve_owner(obj) -> str | None:
        return obj.owner.username if obj.owner_id else None


class ContactIn(Body):
    name: Name
    account_id: Id | None = None
    email: Text(254) = ""
    phone: Text(50) = ""
    title: Text(100) = ""
    owner: Username | None = Field(None, description="Username; defaults to the caller.")
    created_at: Happened | None = None


class ContactPatch(Body):
    name: Name | None = None
    account_id: Id | None = None
    email: Text(254) | None = None
    phone: Text(50) | None = None
    title: Text(100) | None = None
    owner: Username | None = None


class ContactOut(Schema):
    id: int
    name: str
    account_id: int | None
    email: str
    phone: str
    title: str
    owner: str | None
    created_at: dt.datetime

    @staticmethod
    def resolve_owner(obj) -> str | None:
        return obj.owner.username if obj.owner_id else None


# --- Activities -----------------------------------------------------------------------------

ActivityKindIn = Literal["call", "email", "meeting", "note", "task"]


class ActivityIn(Body):
    kind: ActivityKindIn
    deal_id: Id | None = None
    lead_id: Id | None = None
    subject: Text(200) = ""
    notes: Text(10000) = ""
    due_at: When | None = None
    done_at: Happened | None = None
    next_follow_up: When | None = None
    owner: Username | None = Field(None, description="Username; defaults to the caller.")
    created_at: Happened | None = None
    external_id: Text(100, 1) | None = None


class ActivityPatch(Body):
    kind: ActivityKindIn | None = None
    subject: Text(200) | None = None
    notes: Text(10000) | None = None
    due_at: When | None = None


class CompleteIn(Body):
    done_at: Happened | None = None


class ActivityOut(Schema):
    id: int
    external_id: str | None
    kind: str
    subject: str
    owner: str
    deal_id: int | None
    lead_id: int | None
    due_at: dt.datetime | None
    done_at: dt.datetime | None
    notes: str
    created_at: dt.datetime

    @staticmethod
    def resolve_owner(obj) -> str:
        return obj.owner.username


# --- Pages ----------------------------------------------------------------------------------


class LeadPage(Schema):
    items: list[LeadOut]
    next_cursor: str | None


class DealPage(Schema):
    items: list[DealOut]
    next_cursor: str | None


class AccountPage(Schema):
    items: list[AccountOut]
    next_cursor: str | None


class ContactPage(Schema):
    items: list[ContactOut]
    next_cursor: str | None


class ActivityPage(Schema):
    items: list[ActivityOut]
    next_cursor: str | None
