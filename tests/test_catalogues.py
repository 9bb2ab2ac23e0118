"""Every UI string has its Simplified Chinese translation in the app's gettext catalogue.

The catalogues (leakmap/<app>/locale/*/LC_MESSAGES/django.po) are the one place translations
live, editable in Poedit or Weblate. This runs `makemessages` on a copy of each app, which
merges the strings the source marks today into the committed catalogue, and fails on any
that comes out untranslated or fuzzy — so a new string cannot ship in English only. It also
holds the compiled .mo to its .po (the app serves the .mo).
"""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[1] / "leakmap"
APPS = sorted(p.parent.name for p in ROOT.glob("*/locale"))


def entries(po: Path) -> list[dict]:
    """The catalogue's entries but its header: msgid, msgstr (each plural form) and flags."""
    found = []
    for block in re.split(r"\n\s*\n", po.read_text(encoding="utf-8")):
        entry: dict = {"flags": "", "msgid": None, "msgstr": []}
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"] += line
            elif line.startswith("#~"):
                entry["obsolete"] = True
            elif m := re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d+\])?|msgctxt) "(.*)"$', line):
                key = m.group(1)
                if key == "msgid":
                    entry["msgid"] = m.group(2)
                elif key.startswith("msgstr"):
                    entry["msgstr"].append(m.group(2))
            elif line.startswith('"') and key:
                if key == "msgid":
                    entry["msgid"] += line[1:-1]
                elif key.startswith("msgstr"):
                    entry["msgstr"][-1] += line[1:-1]
        if entry["msgid"] and not entry.get("obsolete"):
            found.append(entry)
    return found


def untranslated(po: Path) -> list[str]:
    return [
        e["msgid"]
        for e in entries(po)
        if "fuzzy" in e["flags"] or not e["msgstr"] or not all(e["msgstr"])
    ]


def test_every_app_with_ui_strings_has_a_catalogue():
    assert {"web", "crm", "analytics", "accounts", "api", "automation", "exchange"} <= set(APPS)


@pytest.mark.skipif(shutil.which("msgmerge") is None, reason="needs GNU gettext (makemessages)")
@pytest.mark.parametrize("app", APPS)
def test_every_string_of_the_app_is_translated_to_zh_hans(app, tmp_path, monkeypatch):
    copy = tmp_path / app
    shutil.copytree(ROOT / app, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["zh_Hans"], verbosity=0, no_obsolete=True)
    po = copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    assert entries(po), f"{app}: makemessages found no strings"
    assert untranslated(po) == [], f"{app}: strings without a zh-hans translation"


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="needs GNU gettext (msgfmt)")
@pytest.mark.parametrize("app", APPS)
def test_the_compiled_catalogue_holds_what_the_po_says(app, tmp_path):
    for lang_dir in (ROOT / app / "locale").iterdir():
        po = lang_dir / "LC_MESSAGES" / "django.po"
        compiled = tmp_path / f"{lang_dir.name}.mo"
        subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(po)], check=True)
        with open(compiled, "rb") as fresh, open(po.with_suffix(".mo"), "rb") as shipped:
            want = gettext.GNUTranslations(fresh)._catalog
            have = gettext.GNUTranslations(shipped)._catalog
        assert have == want, f"{app}/{lang_dir.name}: django.mo is older than django.po"
