"""Shared Playwright plumbing for the browser tests: Debian's Chromium, never a downloaded one."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# The password the browser tests' users are made with (tests.factories.UserFactory).
PASSWORD = "pass-word-123"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """In CI a missing browser is a failure, not a skip; on a laptop it may be skipped."""
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing: the browser tests must run in CI")
    pytest.skip(f"{CHROMIUM} is not installed")


def install_default_pipeline() -> None:
    """transactional_db flushes tables between tests, data migrations included: put the
    default pipeline and lost reasons back the way the migration does."""
    from django.apps import apps

    migration = importlib.import_module("leakmap.crm.migrations.0002_default_pipeline")
    migration.install(apps, None)


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def build_company(people: dict, seed: int = 7, deals: int = 120) -> None:
    """A small, deterministic sales team's last ten weeks, written through the services: leads
    from four sources, deals moving through the stages, some won, some lost with reasons, and
    follow-ups. Bob converts fewer leads and loses more in negotiation, so there is something
    to find."""
    import datetime as dt
    import random
    from decimal import Decimal

    from django.utils import timezone

    from leakmap.crm import services
    from leakmap.crm.models import Competitor, LostReason, Stage

    rnd = random.Random(seed)
    now = timezone.now()
    sources = [
        services.source_get_or_create(n) for n in ("官网表单", "展会", "百度推广", "老客户转介绍")
    ]
    rival = Competitor.objects.get_or_create(name="销售易")[0]
    reasons = list(LostReason.objects.order_by("name"))
    stages = list(Stage.objects.filter(pipeline__is_default=True).order_by("order"))
    open_stages = [s for s in stages if s.kind == "open"]
    won = next(s for s in stages if s.kind == "won")
    reps = [people["rep"], people["teammate"], people["manager"]]
    for i in range(deals):
        owner = reps[i % len(reps)]
        weak = owner == people["teammate"]
        created = now - dt.timedelta(days=rnd.uniform(3, 70))
        source = sources[rnd.randrange(len(sources))]
        lead = services.lead_create(
            services.LeadInput(
                name=f"客户{i:03d}",
                company=f"{'华东华南华北西南'[i % 4 * 2 : i % 4 * 2 + 2]}{i:03d}科技",
                owner=owner,
                source=source,
                budget=Decimal(rnd.randrange(2, 60) * 5000),
                created_at=created,
            )
        )
        if rnd.random() < (0.35 if weak else 0.7):
            at = created + dt.timedelta(days=rnd.uniform(0.2, 3))
            deal = services.lead_convert(
                lead=lead,
                data=services.ConversionInput(
                    expected_close_date=(now + dt.timedelta(days=40)).date()
                ),
                by=owner,
                at=at,
            )
            services.activity_log(
                services.ActivityInput(owner=owner, kind="call", deal=deal, done_at=at)
            )
            depth = rnd.randrange(len(open_stages))
            for s in open_stages[1 : depth + 1]:
                at += dt.timedelta(days=rnd.uniform(1, 6))
                if at >= now:
                    break
                services.deal_move(deal=deal, stage=s, by=owner, at=at)
            at += dt.timedelta(days=rnd.uniform(1, 8))
            roll = rnd.random()
            if at < now and roll < (0.25 if weak and depth >= 4 else 0.45):
                services.deal_move(deal=deal, stage=won, by=owner, at=at)
            elif at < now and roll < 0.8:
                reason = reasons[rnd.randrange(len(reasons))]
                services.deal_close_lost(
                    deal=deal,
                    lost_reason=reason,
                    competitor=rival if reason.requires_competitor else None,
                    by=owner,
                    at=at,
                )
        elif rnd.random() < 0.3:
            services.lead_disqualify(lead=lead, reason="无预算")


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
