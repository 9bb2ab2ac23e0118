"""Fill the zh_Hans and en catalogues from translations.py (run after makemessages).

Usage (from the repo root): python leakmap/web/locale/fill_po.py
The en catalogue maps every msgid to itself so that it is complete; zh_Hans takes the table.
An untranslated msgid makes the script fail, so a new UI string cannot ship untranslated.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from translations import ZH  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
APPS = ["web", "crm", "accounts"]


def unquote(block: list[str]) -> str:
    return "".join(
        re.match(r'^(?:msgid|msgid_plural|msgctxt)?\s*"(.*)"$', ln).group(1) for ln in block
    )


def quote(text: str) -> str:
    return '"' + text + '"'


def fill(path: Path, lang: str) -> list[str]:
    missing: list[str] = []
    text = path.read_text(encoding="utf-8")
    # makemessages sometimes glues the header to the first entry: separate them.
    text = re.sub(r'(\n"[^\n]*")\n(#)', r"\1\n\n\2", text)
    entries = text.split("\n\n")
    out = []
    for entry in entries:
        lines = entry.split("\n")
        ids: dict[str, list[str]] = {}
        key = None
        kept: list[str] = []
        for ln in lines:
            m = re.match(r"^(msgid_plural|msgid|msgstr(?:\[\d\])?) (\".*\")$", ln)
            if m:
                key = m.group(1)
                ids.setdefault(key, []).append(m.group(2))
                continue
            if ln.startswith('"') and key:
                ids[key].append(ln)
                continue
            key = None
            if ln.strip() == "#, fuzzy" or ln.startswith("#, fuzzy,"):
                continue
            kept.append(ln)
        if "msgid" not in ids:
            out.append(entry)
            continue
        msgid = "".join(s[1:-1] for s in ids["msgid"])
        if msgid == "":
            # Header: keep, minus the fuzzy flag so msgfmt uses it.
            header = [ln for ln in lines if ln.strip() != "#, fuzzy"]
            out.append("\n".join(header))
            continue
        plural = "".join(s[1:-1] for s in ids.get("msgid_plural", [])) or None
        if lang == "en":
            strs = [msgid, plural] if plural else [msgid]
        else:
            value = ZH.get(msgid)
            if value is None:
                missing.append(msgid)
                value = ""
            strs = [value]
        block = kept + ["msgid " + quote(msgid)]
        if plural:
            block.append("msgid_plural " + quote(plural))
            for i, s in enumerate(strs):
                block.append(f"msgstr[{i}] " + quote(s))
        else:
            block.append("msgstr " + quote(strs[0]))
        out.append("\n".join(block))
    text = "\n\n".join(out)
    if lang == "en":
        text = text.replace(
            '"Plural-Forms: nplurals=1; plural=0;\\n"',
            '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"',
        )
    path.write_text(text, encoding="utf-8")
    subprocess.run(["msgfmt", "--check", "-o", str(path.with_suffix(".mo")), str(path)], check=True)
    return missing


def main() -> int:
    missing: list[str] = []
    for app in APPS:
        for lang in ("zh_Hans", "en"):
            po = ROOT / "leakmap" / app / "locale" / lang / "LC_MESSAGES" / "django.po"
            missing += [f"{app}: {m}" for m in fill(po, lang)]
    if missing:
        print("Untranslated:\n" + "\n".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
