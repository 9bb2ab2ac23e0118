"""What a reader sees of a report page, and the internal codes that must never be part of it:
stage keys, rule codes, body keys, usernames where a display name exists, CLI flags, unrounded
floats. Shared by the page tests and the browser tests."""

from __future__ import annotations

import re
from html import unescape

# Stage keys that are never an English word on a page either.
STAGE_KEYS = ("needs_analysis", "proposal_review")
# Keys that are also English words ("the qualification checklist"): codes only on a Chinese
# page.
STAGE_WORDS = ("qualification", "proposal", "negotiation", "verbal", "won", "lost")
CODES = (
    "over_sla",
    "no_follow_up",
    "by_owner",
    "by_stage",
    "by_competitor",
    "top_lost_reasons",
    "leads_this_week",
    "win_rate",
    "lead_to_deal",
    "brier_score",
    "lead→deal",
    "negotiation→won",
)
CLI_FLAG = re.compile(r"(?<![\w-])--(?:from|to|as-of|owner|team|source|week|format)\b")
# A figure printed with all its float digits (0.15193548387096775), or a negative day count.
RAW_FLOAT = re.compile(r"(?<![\d.,])\d+\.\d{4,}")
NEGATIVE_DAYS = re.compile(r"(?<![\d\w])-\d+(?:\.\d+)?(?= ?(?:天|d\b|days\b))")


def page_text(html: str) -> str:
    """The text of a page without its scripts, styles and tags (attribute values such as date
    inputs' ISO values are not read, titles are: they are shown on hover)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    titles = " ".join(re.findall(r'\btitle="([^"]*)"', html))
    text = re.sub(r"<[^>]+>", " ", html)
    return unescape(text + " " + titles)


def codes_in(text: str, lang: str, usernames: tuple[str, ...] = ()) -> list[str]:
    """The internal codes `text` shows (empty when it shows none)."""
    found = []
    words = STAGE_KEYS + (STAGE_WORDS if lang.startswith("zh") else ())
    for word in words + usernames:
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
            found.append(word)
    found += [code for code in CODES if code in text]
    found += CLI_FLAG.findall(text) + RAW_FLOAT.findall(text) + NEGATIVE_DAYS.findall(text)
    return found
