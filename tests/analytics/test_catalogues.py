"""The analytics texts (report labels, the diagnosis' findings and actions) live in gettext
catalogues: every msgid the code marks is translated in zh_Hans, and the catalogues compile."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "leakmap" / "analytics"
CATALOGUE = APP / "locale" / "{lang}" / "LC_MESSAGES" / "django.po"
# Django's gettext functions, as makemessages hands them to xgettext.
KEYWORDS = [
    "--keyword=gettext_noop",
    "--keyword=gettext_lazy",
    "--keyword=ngettext_lazy:1,2",
    "--keyword=pgettext:1c,2",
    "--keyword=pgettext_lazy:1c,2",
    "--keyword=npgettext:1c,2,3",
    "--keyword=npgettext_lazy:1c,2,3",
]


def _tools() -> None:
    for tool in ("xgettext", "msgfmt"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} (GNU gettext) is needed to check the catalogues")


def _template(tmp_path: Path, sources: list[Path]) -> Path:
    pot = tmp_path / "analytics.pot"
    subprocess.run(
        ["xgettext", "--language=Python", "--from-code=UTF-8", *KEYWORDS, "-o", str(pot)]
        + [str(p) for p in sources],
        check=True,
        capture_output=True,
    )
    return pot


def _entries(path: Path) -> dict[tuple[str | None, str], str]:
    """(msgctxt, msgid) → msgstr (the first form of a plural) of a .po or .pot file."""
    entries: dict[tuple[str | None, str], str] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        parts: dict[str, str] = {}
        current = None
        for line in block.splitlines():
            match = re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[0\])?)\s+"(.*)"$', line)
            if match:
                current = match.group(1).replace("[0]", "")
                parts[current] = match.group(2)
            elif line.startswith('"') and current:
                parts[current] += line[1:-1]
        if parts.get("msgid"):
            entries[(parts.get("msgctxt"), parts["msgid"])] = parts.get("msgstr", "")
    return entries


def _untranslated(catalogue: Path, pot: Path) -> list[str]:
    """The msgids of `pot` that `catalogue` lacks or leaves untranslated."""
    have = _entries(catalogue)
    return sorted(msgid for key in _entries(pot) if not have.get(key) for msgid in [key[1]])


def _sources() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if "migrations" not in p.parts)


def test_it_translates_every_analytics_text_into_chinese(tmp_path):
    _tools()
    pot = _template(tmp_path, _sources())
    assert _untranslated(Path(str(CATALOGUE).format(lang="zh_Hans")), pot) == []


def test_it_notices_a_text_missing_from_the_catalogue(tmp_path):
    _tools()
    source = tmp_path / "new_text.py"
    source.write_text(
        'from django.utils.translation import gettext as _\n_("A brand-new finding")\n'
    )
    pot = _template(tmp_path, [*_sources(), source])
    missing = _untranslated(Path(str(CATALOGUE).format(lang="zh_Hans")), pot)
    assert missing == ["A brand-new finding"]


@pytest.mark.parametrize("lang", ["zh_Hans", "en"])
def test_its_catalogues_compile_with_matching_placeholders(tmp_path, lang):
    _tools()
    po = Path(str(CATALOGUE).format(lang=lang))
    done = subprocess.run(
        ["msgfmt", "--check", "-o", str(tmp_path / "django.mo"), str(po)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert po.read_text(encoding="utf-8").endswith("\n")


def test_no_inline_translation_pairs_are_left_in_the_diagnosis():
    text = (APP / "diagnosis.py").read_text(encoding="utf-8")
    assert "_t(" not in text
