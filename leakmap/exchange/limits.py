"""What an import (and the API, for its times) accepts: the bounds on dates and times, on a
cell's text, and on the size of an .xlsx archive before it is unpacked.

Every bound is checked while rows are validated, so a value past one is a row error naming
file, row and column, and nothing is written; and a value passes only when both SQLite and
PostgreSQL can store it and the pages can show it (a year-1 time overflows once SQLite's
adapter turns it into UTC; PostgreSQL refuses a NUL character in text).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zipfile
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from leakmap.config.settings import envint

# --- times (CONTRACT §2) ----------------------------------------------------------------------

# Times of things that happened (created_at, closed_at, a stage entry's entered_at, an
# activity's done_at) lie between EARLIEST and the moment of the import or request.
# Plans (expected_close_date, due_at, next_follow_up) may be in the future, up to LATEST; a
# spend month lies in the same range.
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2999, 12, 31)


def _local_midnight(day: dt.date) -> dt.datetime:
    return _midnight(day, settings.TIME_ZONE)


@functools.lru_cache(maxsize=16)
def _midnight(day: dt.date, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zoneinfo.ZoneInfo(zone))


def happened_problem(value: dt.datetime, now: dt.datetime) -> str | None:
    """Why `value` (aware) cannot be the time something happened, or None when it can.

    The day bounds are read in the install's time zone, as a CSV's times without an offset
    are: "2000-01-01" is the earliest accepted value."""
    if value < _local_midnight(EARLIEST):
        return _("before %(d)s, the earliest time accepted for something that happened") % {
            "d": EARLIEST.isoformat()
        }
    if value > now:
        local = now.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
        return _("after %(now)s, which is now: the time something happened cannot lie ahead") % {
            "now": local.isoformat(timespec="seconds")
        }
    return None


def plan_problem(value: dt.datetime | dt.date) -> str | None:
    """Why `value` (an aware datetime or a date) cannot be a planned time, or None."""
    if isinstance(value, dt.datetime):
        ok = _local_midnight(EARLIEST) <= value < _local_midnight(LATEST + dt.timedelta(days=1))
    else:
        ok = EARLIEST <= value <= LATEST
    if ok:
        return None
    return _("out of range; use a date between %(a)s and %(b)s") % {
        "a": EARLIEST.isoformat(),
        "b": LATEST.isoformat(),
    }


# --- cells ------------------------------------------------------------------------------------

# The longest cell an import reads: the API's longest text (an activity's notes) is as long.
MAX_CELL_CHARS = 10_000
# Characters no database here stores: NUL (PostgreSQL refuses it in text) and lone UTF-16
# surrogates (neither driver can encode one as UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def cell_problem(value: str) -> str | None:
    """Why the text of one cell cannot be imported, or None."""
    if len(value) > MAX_CELL_CHARS:
        return _("longer than %(n)s characters, the longest cell an import reads") % {
            "n": MAX_CELL_CHARS
        }
    found = UNSTORABLE.search(value)
    if found:
        return _("contains the character %(c)s, which cannot be stored") % {
            "c": f"U+{ord(found.group()):04X}"
        }
    return None


def shown(value: str, limit: int = 60) -> str:
    """A cell's value as an error line quotes it: cut short when long."""
    return value if len(value) <= limit else value[:limit] + "…"


# --- .xlsx archives ---------------------------------------------------------------------------

# An .xlsx is a zip archive: a few MB can unpack to gigabytes (a "zip bomb"), and openpyxl holds
# the shared strings in memory. The central directory gives every member's sizes without
# unpacking anything; zipfile never unpacks a member past the size the directory declares
# (it stops there and fails the CRC check), so the declared sizes bound the work.
DEFAULT_MAX_UNCOMPRESSED_MB = 1024  # an export of a million leads unpacks to ~0.85 GB
DEFAULT_MAX_RATIO = 100  # leakmap's and Excel's own files compress about 10:1
MAX_MEMBERS = 1000  # a workbook of one sheet has about ten
# A member this small cannot do harm whatever its ratio (a styles.xml may compress 30:1).
RATIO_FROM_BYTES = 10 * 1024 * 1024
MB = 1024 * 1024


def _positive(name: str, default: int) -> int:
    value = envint(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name}={value}: expected a whole number of at least 1")
    return value


def max_uncompressed_mb() -> int:
    return _positive("LEAKMAP_IMPORT_MAX_UNCOMPRESSED_MB", DEFAULT_MAX_UNCOMPRESSED_MB)


def max_ratio() -> int:
    return _positive("LEAKMAP_IMPORT_MAX_RATIO", DEFAULT_MAX_RATIO)


def archive_problem(path: Path) -> str | None:
    """Why the .xlsx at `path` is refused before it is parsed, or None. A file that is not a
    zip archive at all is left to openpyxl, which says so."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if len(members) > MAX_MEMBERS:
        return _("the archive holds %(n)s parts, more than the %(max)s an .xlsx may have") % {
            "n": len(members),
            "max": MAX_MEMBERS,
        }
    limit = max_uncompressed_mb()
    total = sum(m.file_size for m in members)
    if total > limit * MB:
        return _(
            "unpacks to %(size)s MB, more than the limit of %(max)s MB "
            "(LEAKMAP_IMPORT_MAX_UNCOMPRESSED_MB); save it as CSV, or raise the limit"
        ) % {"size": f"{total / MB:,.0f}", "max": limit}
    ratio = max_ratio()
    for m in members:
        if m.file_size > RATIO_FROM_BYTES and m.file_size > ratio * max(m.compress_size, 1):
            return _(
                "its part %(part)s unpacks %(r)s times larger than it is stored, more than the "
                "limit of %(max)s (LEAKMAP_IMPORT_MAX_RATIO); the file looks built to exhaust "
                "memory"
            ) % {
                "part": m.filename,
                "r": f"{m.file_size / max(m.compress_size, 1):,.0f}",
                "max": ratio,
            }
    return None
