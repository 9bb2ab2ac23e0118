"""The machinery every importer shares: the row and record types, the cell parsers and their
error reporting (`Importer`), the lookups of names and external ids, and the stages."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from itertools import islice
from operator import itemgetter

from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, models
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from leakmap.accounts.models import Team, User
from leakmap.crm import bulk
from leakmap.crm.models import Competitor, Industry, LostReason, Source, Stage, StageKind
from leakmap.crm.services import REQUIRABLE_FIELDS, default_pipeline
from leakmap.exchange.limits import (
    MAX_CELL_CHARS,
    cell_problem,
    happened_problem,
    plan_problem,
    shown,
)
from leakmap.exchange.readers import Table

BATCH = 2000
CACHE_SIZE = 100_000  # parsed cells kept per kind of cell (see Importer._remember)
CENT = Decimal("0.01")
MAX_MONEY = Decimal("999999999999.99")  # 14 digits, 2 places
_username_ok = UnicodeUsernameValidator()

# A fact refresh of more records than this recounts the tallies instead of leaving the work to
# SQLite's triggers, one row at a time (a recount of a million leads takes ~3.6 s; the
# triggers, an estimated ~12 µs a rewritten row). Small imports keep the triggers: a recount reads all.
TALLY_RECOUNT_FROM = 50_000


def choice_map(choices) -> dict[str, str]:
    """value → value for every way a user may write a choice: its key, or its label in any
    installed language (case-insensitive)."""
    out: dict[str, str] = {}
    for lang, _name in settings.LANGUAGES:
        with translation.override(lang):
            for value, label in choices:
                out[str(label).casefold()] = value
    for value, _label in choices:
        out[value.casefold()] = value
    return out


class Rec(dict):
    """A parsed row: model attnames → values, cheaper than a model instance per row."""

    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__


class Row(dict):
    """One row's cells by column name (stripped; a column the file lacks reads as blank)."""

    __slots__ = ("n",)

    def __init__(self, n: int, cells: list[str], index: dict[str, int]):
        size = len(cells)
        super().__init__((c, cells[i].strip()) for c, i in index.items() if i < size)
        self.n = n

    def __missing__(self, col: str) -> str:
        return ""


def row_maker(index: dict[str, int]) -> Callable[[int, list[str]], Row]:
    """A faster `Row(n, cells, index)` for one file: the cells are picked with one itemgetter
    and stripped with map; a short row (fewer cells than the header) takes the general path."""
    cols = tuple(index)
    if not cols:
        return lambda n, cells: Row(n, cells, index)
    width = max(index.values()) + 1
    pick = itemgetter(*index.values())
    one = len(cols) == 1
    strip = str.strip
    new = dict.__new__
    init = dict.__init__

    def make(n: int, cells: list[str]) -> Row:
        if len(cells) < width:
            return Row(n, cells, index)
        row = new(Row)
        init(row, zip(cols, map(strip, (pick(cells),) if one else pick(cells)), strict=True))
        row.n = n
        return row

    return make


# Domains seen in e-mail addresses and whether Django's EmailValidator accepts them: a file of
# a million leads has a handful of domains, and the domain check is most of the validator's cost.
_EMAIL_DOMAINS: dict[str, bool] = {}
# The validator's user-part pattern, compiled once (it is a lazy object, costly per access).
_EMAIL_USER = re.compile(validate_email.user_regex.pattern, validate_email.user_regex.flags)


def email_ok(value: str) -> bool:
    """validate_email(value) as a bool, with the domain part's verdict cached (same rules)."""
    if not value or "@" not in value or len(value) > 320:
        return False
    user_part, domain_part = value.rsplit("@", 1)
    if not _EMAIL_USER.match(user_part):
        return False
    ok = _EMAIL_DOMAINS.get(domain_part)
    if ok is None:
        ok = domain_part in validate_email.domain_allowlist or bool(
            validate_email.validate_domain_part(domain_part)
        )
        if len(_EMAIL_DOMAINS) < 10_000:
            _EMAIL_DOMAINS[domain_part] = ok
    return ok


class Lookups:
    """Name → id maps of the small lists imports refer to, loaded once; names not yet known are
    created (owners as reps without a usable password) and counted for the summary."""

    def __init__(self):
        self.created: Counter[str] = Counter()
        self.maps: dict[str, dict[str, int]] = {
            "source": dict(Source.objects.values_list("name", "id")),
            "industry": dict(Industry.objects.values_list("name", "id")),
            "competitor": dict(Competitor.objects.values_list("name", "id")),
            "lost_reason": dict(LostReason.objects.values_list("name", "id")),
            "team": dict(Team.objects.values_list("name", "id")),
            "owner": dict(User.objects.values_list("username", "id")),
        }
        self.needs_competitor = set(
            LostReason.objects.filter(requires_competitor=True).values_list("id", flat=True)
        )
        self._models = {
            "source": Source,
            "industry": Industry,
            "competitor": Competitor,
            "lost_reason": LostReason,
        }

    def get(self, what: str, name: str) -> int:
        known = self.maps[what]
        pk = known.get(name)
        if pk is None:
            if what == "owner":
                pk = bulk.owner_create(name).pk
            elif what == "team":
                pk = bulk.team_get_or_create(name).pk
            else:
                pk = self._models[what].objects.get_or_create(name=name)[0].pk
            known[name] = pk
            self.created[what] += 1
        return pk


class Importer:
    kind = ""
    batch_size = BATCH
    # Whether `model`'s table was empty when the import began (checked inside its
    # transaction): then no row of the file can exist already (one named twice in the file is
    # an error, and then nothing is written), and the per-batch query for existing external
    # ids is skipped.
    model = None
    fresh = False
    # Build `model`'s indexes once at the end of an import into an empty table
    # (bulk.indexes_deferred), but for those the import reads through while it runs. It pays
    # where the writer thread is the bottleneck (leads, deals: wide rows, many indexes); where
    # parsing is (activities, stage history), the writer keeps the indexes for free meanwhile
    # and a rebuild at the end would only add to the wall time.
    defer_indexes = False
    indexes_read: tuple[str, ...] = ()

    def __init__(self, table: Table, index: dict[str, int], *, lookups: Lookups | None = None):
        self.table = table
        self.index = index
        self.name = str(table.path)
        self.errors: list[str] = []
        self.bad_rows: set[int] = set()
        self.rows = 0
        self.created = 0
        self.updated = 0
        self.lookups = lookups or Lookups()
        self.tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        self.now = timezone.now()
        # text → (time, why it cannot have happened, why it cannot be a plan)
        self._times: dict[str, tuple[dt.datetime, str | None, str | None]] = {}
        self._amounts: dict[str, Decimal] = {}

    # --- reporting ------------------------------------------------------------------------------

    def error(self, row: Row | int, col: str, value: str, message: str) -> None:
        n = row if isinstance(row, int) else row.n
        self.bad_rows.add(n)
        self.errors.append(f"{self.name}:{n}: column {col}: value {shown(value)!r}: {message}")

    def referenced(self, found: dict[str, tuple], key: str, row: Row | int, column: str):
        """What `found` (an `_existing` or References lookup) holds for the external id `key`
        of `column` ("deal_external_id" or "lead_external_id"), or None after recording the
        row's error: the record it names is not in the database."""
        value = found.get(key)
        if value is None:
            if column == "deal_external_id":
                message = _("no deal with this external_id in the database")
            else:
                message = _("no lead with this external_id in the database")
            self.error(row, column, key, message)
        return value

    def cells_ok(self, n: int, cells: list[str]) -> bool:
        """Whether every cell of a row is text the databases can store and not longer than
        MAX_CELL_CHARS; each cell that is not is an error (limits.cell_problem). One look at
        the joined row answers for nearly every row. It looks for NUL only: the readers never
        yield a lone surrogate (UTF-8 and GB18030 are decoded strictly, and the XML parser
        refuses one), and a search for a character range would cost several times more."""
        joined = "".join(cells)
        if len(joined) <= MAX_CELL_CHARS and "\x00" not in joined:
            return True
        names = {i: c for c, i in self.index.items()}
        ok = True
        for i, value in enumerate(cells):
            problem = cell_problem(value)
            if problem:
                self.error(n, names.get(i, f"#{i + 1}"), value, problem)
                ok = False
        return ok

    @property
    def writing(self) -> bool:
        return not self.errors

    # --- cell parsers: each returns the value or None after recording an error -----------------

    def text(
        self, row: Row, col: str, *, required: bool = False, max_length: int = 0
    ) -> str | None:
        value = row[col]
        if required and not value:
            self.error(row, col, value, _("required, cannot be blank"))
            return None
        if max_length and len(value) > max_length:
            self.error(row, col, value, _("longer than %(n)s characters") % {"n": max_length})
            return None
        return value

    def money(self, row: Row, col: str, *, required: bool = False) -> Decimal | None:
        value = row[col]
        if not value:
            if required:
                self.error(row, col, value, _("required, cannot be blank"))
            return None
        amount = self._amounts.get(value)
        if amount is not None:
            return amount
        try:
            amount = Decimal(value.replace(",", "").replace("¥", "").replace("￥", ""))
        except InvalidOperation:
            self.error(row, col, value, _("not a number"))
            return None
        if not amount.is_finite():
            self.error(row, col, value, _("not a number"))
            return None
        if amount < 0:
            self.error(row, col, value, _("cannot be negative"))
            return None
        if amount > MAX_MONEY:
            self.error(row, col, value, _("too large"))
            return None
        amount = amount.quantize(CENT)
        self._remember(self._amounts, value, amount)
        return amount

    @staticmethod
    def _remember(cache: dict, key, value) -> None:
        """Keep a parsed cell for the next row with the same text: amounts and times repeat
        (budgets, minutes) across a big file. Bounded, so memory stays flat."""
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[key] = value

    def when(
        self, row: Row, col: str, *, happened: bool, required: bool = False
    ) -> dt.datetime | None:
        """ISO 8601; without an offset the time is in settings.TIME_ZONE; a bare date is 00:00.

        happened=True: the time something happened, not after the import began
        (limits.happened_problem); False: a plan, which may lie ahead (limits.plan_problem)."""
        value = row[col]
        if not value:
            if required:
                self.error(row, col, value, _("required, cannot be blank"))
            return None
        known = self._times.get(value)
        if known is None:
            known = self._parse_time(row, col, value)
            if known is None:
                return None
        parsed, not_happened, not_plan = known
        problem = not_happened if happened else not_plan
        if problem:
            self.error(row, col, value, problem)
            return None
        return parsed

    def _parse_time(self, row: Row, col: str, value: str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(value.replace("/", "-"))
            except ValueError:
                self.error(
                    row,
                    col,
                    value,
                    _("not a date/time; use ISO 8601 such as 2026-03-01 or 2026-03-01T14:30"),
                )
                return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.tz)
        known = (parsed, happened_problem(parsed, self.now), plan_problem(parsed))
        self._remember(self._times, value, known)
        return known

    def date(self, row: Row, col: str) -> dt.date | None:
        """A planned day (limits.plan_problem)."""
        value = row[col]
        if not value:
            return None
        try:
            day = dt.date.fromisoformat(value.replace("/", "-")[:10])
        except ValueError:
            self.error(row, col, value, _("not a date; use ISO 8601 such as 2026-03-01"))
            return None
        problem = plan_problem(day)
        if problem:
            self.error(row, col, value, problem)
            return None
        return day

    def choice(
        self, row: Row, col: str, choices: dict[str, str], default: str | None
    ) -> str | None:
        value = row[col]
        if not value and default is not None:
            return default
        found = choices.get(value.casefold())
        if found is None:
            keys = sorted(set(choices.values()))
            self.error(row, col, value, _("unknown; use one of %(k)s") % {"k": ", ".join(keys)})
        return found

    def lookup(self, row: Row, col: str, what: str) -> int | None:
        value = row[col]
        if not value:
            return None
        if len(value) > (150 if what == "owner" else 100):
            self.error(row, col, value, _("name too long"))
            return None
        if what == "owner" and value not in self.lookups.maps["owner"]:
            try:
                _username_ok(value)
            except ValidationError:
                self.error(
                    row, col, value, _("not a valid username (letters, digits and @.+-_ only)")
                )
                return None
        return self.lookups.get(what, value)

    def email(self, row: Row, col: str) -> str | None:
        value = row[col]
        if value:
            if not email_ok(value):
                self.error(row, col, value, _("not an e-mail address"))
                return None
            if len(value) > 254:
                self.error(row, col, value, _("longer than %(n)s characters") % {"n": 254})
                return None
        return value

    def unique(self, seen: dict[str, int], row: Row, col: str, key: str) -> bool:
        first = seen.get(key)
        if first is not None:
            self.error(
                row, col, key, _("appears twice in this file (first on row %(n)s)") % {"n": first}
            )
            return False
        seen[key] = row.n
        return True

    # --- the run --------------------------------------------------------------------------------

    def run(self, progress: Callable[[], None] | None = None) -> None:
        self.fresh = self.model is not None and not self.model.objects.exists()
        # The previous kind's import just filled the tables this one looks ids up in.
        bulk.refresh_statistics()
        it = iter(self.table.rows)
        make_row = row_maker(self.index)
        with (
            bulk.indexes_deferred(self.model, keep=self.indexes_read)
            if self.fresh and self.defer_indexes
            else contextlib.nullcontext()
        ):
            while True:
                raw = list(islice(it, self.batch_size))
                if not raw:
                    break
                records = []
                for n, cells in raw:
                    self.rows += 1
                    if not self.cells_ok(n, cells):
                        continue
                    before = len(self.errors)
                    rec = self.parse(make_row(n, cells))
                    if rec is not None and len(self.errors) == before:
                        records.append(rec)
                self.batch(records)
                if progress:
                    progress()
        bulk.flush_writes()  # what finish() reads was written
        self.finish()

    def parse(self, row: Row):
        raise NotImplementedError

    def batch(self, records: list) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "created": self.created, "updated": self.updated}


def _existing(model, ids: Iterable[str] | None, *fields: str) -> dict[str, tuple]:
    """external_id → (fields…) for the rows of `model` that exist, one query per 2,000 ids;
    ids=None: every row with an external_id, in one query.

    `fields` are concrete columns (attnames). A plain cursor, because the ORM's conversion of
    each datetime (a regular expression and a time-zone lookup) cost more than the queries on
    a large import; `_from_db` reads them back in the database connection's time zone."""
    qn = connection.ops.quote_name
    opts = model._meta
    columns = [opts.get_field(f) for f in fields]
    select = (
        f"SELECT {', '.join(qn(c) for c in ['external_id', *(f.column for f in columns)])}"
        f" FROM {qn(opts.db_table)} WHERE external_id"
    )
    datetimes = [i for i, f in enumerate(columns, start=1) if isinstance(f, models.DateTimeField)]
    if ids is None:
        queries = [(f"{select} IS NOT NULL", [])]
    else:
        ids = list(ids)
        queries = [
            (f"{select} IN ({', '.join(['%s'] * len(part))})", part)
            for part in (ids[i : i + BATCH] for i in range(0, len(ids), BATCH))
        ]
    out: dict[str, tuple] = {}
    with connection.cursor() as cursor:
        for sql, params in queries:
            cursor.execute(sql, params)
            for row in cursor.fetchall():
                if datetimes:
                    row = list(row)
                    for j in datetimes:
                        row[j] = _from_db(row[j])
                out[row[0]] = tuple(row[1:])
    return out


def _from_db(value):
    """A datetime column's raw value as an aware datetime: PostgreSQL's driver gives one; on
    SQLite it is naive (or text where no converter applies), in the connection's time zone,
    as Django's own converter reads it."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=connection.timezone)


class References:
    """external_id → (fields…) of the rows of `model` that an import refers to.

    Looked up per batch (`_existing`) while the import is small; once it has asked for more
    than PRELOAD_AFTER keys, every row is read in one plain query instead, which is far
    cheaper than hundreds of long IN lists (1.8M activities refer to 300k deals and 500k
    leads). Only for imports that do not write `model`, and for id columns (no datetimes,
    whose conversion would cost more than the lookups saved)."""

    PRELOAD_AFTER = 20_000

    def __init__(self, model, *fields: str):
        self.model, self.fields = model, fields
        self.asked = 0
        self.everything: dict[str, tuple] | None = None

    def lookup(self, keys: set[str]) -> dict[str, tuple]:
        if self.everything is not None:
            return self.everything
        self.asked += len(keys)
        if self.asked <= self.PRELOAD_AFTER:
            return _existing(self.model, keys, *self.fields)
        self.everything = _existing(self.model, None, *self.fields)
        return self.everything


class Stages:
    """Stage by key or by label in any installed language, within the default pipeline."""

    def __init__(self):
        self.pipeline = default_pipeline()
        self.stages = list(Stage.objects.filter(pipeline=self.pipeline).order_by("order"))
        self.by_name: dict[str, Stage] = {}
        for s in self.stages:
            for name in (s.label_en, s.label_zh, s.key):
                self.by_name[name.casefold()] = s
        self.by_id = {s.pk: s for s in self.stages}
        self.order = {s.pk: s.order for s in self.stages}
        self.first_open = next(s for s in self.stages if s.kind == StageKind.OPEN)
        self.lost_ids = {s.pk for s in self.stages if s.kind == StageKind.LOST}
        # A stage's required fields: its own, and for open/won stages those of every open stage
        # before it too (reaching a stage passes every stage before it) — as services do.
        self.required: dict[int, list[str]] = {}
        for s in self.stages:
            scope = (
                [s]
                if s.kind == StageKind.LOST
                else [t for t in self.stages if t.order <= s.order and t.kind != StageKind.LOST]
            )
            fields: list[str] = []
            for t in scope:
                for f in t.required_fields or []:
                    if f in REQUIRABLE_FIELDS and f not in fields:
                        fields.append(f)
            self.required[s.pk] = fields

    def match(self, imp: Importer, row: Row, col: str) -> Stage | None:
        value = row[col]
        stage = self.by_name.get(value.casefold()) if value else None
        if stage is None:
            imp.error(
                row,
                col,
                value,
                _("unknown stage; use one of %(k)s (or their labels)")
                % {"k": ", ".join(s.key for s in self.stages)},
            )
        return stage
