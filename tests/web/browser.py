"""Shared Playwright plumbing for the browser tests: Debian's Chromium, never a downloaded one."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
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
