"""factory_boy factories. Deals are made through services so that their history and facts are
real; use the `journey` helper in tests/analytics for multi-step paths."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from leakmap.accounts.models import Role, Team, User
from leakmap.crm import services
from leakmap.crm.models import Competitor, Industry, Lead, LostReason, Source, Stage

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda o: o.username.title())
    role = Role.REP
    team = factory.SubFactory(TeamFactory)
    password = factory.django.Password("pass-word-123")


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Source {n}")


class IndustryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Industry
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Industry {n}")


class CompetitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Competitor
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Competitor {n}")


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    name = factory.Sequence(lambda n: f"Lead {n}")
    company = factory.Sequence(lambda n: f"Company {n}")
    source = factory.SubFactory(SourceFactory)
    owner = factory.SubFactory(UserFactory)
    created_at = T0


def stage(key: str) -> Stage:
    return Stage.objects.get(pipeline__is_default=True, key=key)


def lost_reason(name: str = "价格过高") -> LostReason:
    return LostReason.objects.get(name=name)


def make_deal(
    *,
    owner: User | None = None,
    amount: Decimal | int = 1000,
    created_at: dt.datetime = T0,
    stage_key: str | None = None,
    lead: Lead | None = None,
    source: Source | None = None,
    expected_close_date: dt.date | None = dt.date(2026, 3, 31),
    **kwargs,
):
    """A deal made through `deal_create`, so it has its first history row. `by` is who
    creates it; every other keyword is a DealInput field."""
    by = kwargs.pop("by", None)
    data = services.DealInput(
        name=kwargs.pop("name", "Deal"),
        owner=owner or UserFactory(),
        amount=Decimal(amount),
        stage=stage(stage_key) if stage_key else None,
        lead=lead,
        source=source,
        expected_close_date=expected_close_date,
        created_at=created_at,
        **kwargs,
    )
    return services.deal_create(data, by=by)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def now() -> dt.datetime:
    return timezone.now()
