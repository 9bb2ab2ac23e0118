"""Running the import/export commands the way a user does, on real files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from leakmap.accounts.models import User
from leakmap.crm.models import (
    Account,
    Activity,
    Competitor,
    Contact,
    Deal,
    Industry,
    Lead,
    Source,
    Spend,
    StageChange,
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def run_import(kind: str, path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_data", kind, str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def import_fails(kind: str, path: Path, *args: str) -> list[str]:
    """The error lines of an import that must fail with exit code 2."""
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("import_data", kind, str(path), *args, stdout=io.StringIO(), stderr=err)
    assert exc.value.returncode == 2
    lines = [line for line in err.getvalue().splitlines() if line]
    return lines + str(exc.value).splitlines()


def run_export(kind: str, path: Path) -> str:
    out = io.StringIO()
    call_command("export_data", kind, str(path), stdout=out)
    return out.getvalue()


def db_counts() -> dict[str, int]:
    models = [
        User,
        Lead,
        Deal,
        StageChange,
        Activity,
        Spend,
        Account,
        Contact,
        Source,
        Industry,
        Competitor,
    ]
    return {m.__name__: m.objects.count() for m in models}
