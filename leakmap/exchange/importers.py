"""Validating importers, one per kind (CONTRACT §2).

Each importer reads its file in batches: every cell is parsed and every rule checked, references
are resolved with one query per batch, and — as long as no row so far was bad — the batch is
written through `leakmap.crm.bulk`. The command runs the whole import in one transaction and
rolls it back when any row was bad (or on --dry-run), so one bad row means nothing is written
while every bad row is still reported, in a single pass over a file of a million rows.
"""

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

from leakmap.accounts.models import Role, Team, User
from leakmap.crm import bulk
from leakmap.crm.models import (
    Activity,
    ActivityKind,
    Competitor,
    Deal,
    Industry,
    Lead,
    LeadStatus,
    LostReason,
    Source,
    Spend,
    Stage,
    StageKind,
)
from leakmap.crm.services import REQUIRABLE_FIELDS, default_pipeline, lead_intake_assign
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
MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})(?:-01)?$")
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


LEAD_COLUMNS = [
    "external_id",
    "name",
    "company",
    "email",
    "phone",
    "source_id",
    "industry_id",
    "title",
    "budget",
    "product",
    "owner_id",
    "status",
    "created_at",
    "disqualified_reason",
]
DEAL_COLUMNS = [
    "external_id",
    "lead_id",
    "name",
    "account_id",
    "contact_id",
    "amount",
    "pipeline_id",
    "stage_id",
    "owner_id",
    "source_id",
    "industry_id",
    "created_at",
    "expected_close_date",
    "closed_at",
    "lost_reason_id",
    "competitor_id",
    "next_follow_up",
    "lead_source_id",
]
DEAL_FACTS = ["reached_order", "stage_entered_at", "lost_at_stage_id"]
ACTIVITY_COLUMNS = [
    "external_id",
    "kind",
    "subject",
    "owner_id",
    "deal_id",
    "lead_id",
    "due_at",
    "done_at",
    "notes",
    "created_at",
]


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


# --- users --------------------------------------------------------------------------------------


class UsersImporter(Importer):
    kind = "users"
    batch_size = 10**9  # a users file is small; managers may be named on later rows

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.roles = choice_map(Role.choices)
        self.seen: dict[str, int] = {}

    def parse(self, row: Row):
        username = self.text(row, "username", required=True, max_length=150)
        if username:
            try:
                _username_ok(username)
            except ValidationError:
                self.error(
                    row,
                    "username",
                    username,
                    _("not a valid username (letters, digits and @.+-_ only)"),
                )
                username = None
        if username and not self.unique(self.seen, row, "username", username):
            username = None
        rec = {
            "row": row,
            "username": username,
            "display_name": self.text(row, "display_name", max_length=150),
            "role": self.choice(row, "role", self.roles, Role.REP),
            "team": self.text(row, "team", max_length=100),
            "manager": self.text(row, "manager", max_length=150),
            "email": self.email(row, "email"),
        }
        return rec

    def batch(self, records: list) -> None:
        existing = {
            u.username: u
            for u in User.objects.filter(username__in=[r["username"] for r in records])
        }
        known = set(self.lookups.maps["owner"])
        for r in records:
            m = r["manager"]
            if m and m not in known and m not in self.seen:
                self.error(
                    r["row"], "manager", m, _("no such user in the database or in this file")
                )
            elif m and m == r["username"]:
                self.error(r["row"], "manager", m, _("a user cannot be their own manager"))
        if not self.writing:
            return
        new, updates, managers = [], [], {}
        for r in records:
            team_id = self.lookups.get("team", r["team"]) if r["team"] else None
            user = existing.get(r["username"])
            if user is None:
                user = User(username=r["username"], role=r["role"])
                new.append(user)
            else:
                updates.append(user)
            user.display_name = r["display_name"]
            user.role = r["role"]
            user.team_id = team_id
            user.email = r["email"]
            managers[r["username"]] = r["manager"] or None
        bulk.users_upsert(new=new, updates=updates, managers=managers)
        for u in new:
            self.lookups.maps["owner"][u.username] = u.pk
        self.created += len(new)
        self.updated += len(updates)


# --- leads --------------------------------------------------------------------------------------


class LeadsImporter(Importer):
    kind = "leads"
    model = Lead
    defer_indexes = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.statuses = choice_map(LeadStatus.choices)
        self.seen: dict[str, int] = {}
        self.unowned: list[str] = []  # external ids of new leads that came without an owner
        self.assigned = 0

    def parse(self, row: Row):
        ext = self.text(row, "external_id", required=True, max_length=100)
        if ext:
            self.unique(self.seen, row, "external_id", ext)  # reported; the row's other cells too
        status = self.choice(row, "status", self.statuses, LeadStatus.NEW)
        reason = self.text(row, "disqualified_reason", max_length=200)
        if status == LeadStatus.DISQUALIFIED and reason == "":
            self.error(row, "disqualified_reason", "", _("a disqualified lead needs a reason"))
        lead = Rec(
            external_id=ext,
            name=self.text(row, "name", required=True, max_length=200),
            company=self.text(row, "company", max_length=200),
            email=self.email(row, "email"),
            phone=self.text(row, "phone", max_length=50),
            source_id=self.lookup(row, "source", "source"),
            industry_id=self.lookup(row, "industry", "industry"),
            title=self.text(row, "title", max_length=100),
            budget=self.money(row, "budget"),
            product=self.text(row, "product", max_length=200),
            owner_id=self.lookup(row, "owner", "owner"),
            status=status,
            created_at=self.when(row, "created_at", happened=True, required=True),
            disqualified_reason=reason if status == LeadStatus.DISQUALIFIED else "",
        )
        return lead

    def batch(self, records: list[Rec]) -> None:
        existing = {} if self.fresh else _existing(Lead, (r.external_id for r in records), "id")
        if not self.writing:
            return
        new, updates = [], []
        values = itemgetter(*LEAD_COLUMNS)
        for lead in records:
            found = existing.get(lead.external_id) if existing else None
            if found:
                updates.append((*values(lead), found[0]))
            else:
                new.append(values(lead))
                if lead.owner_id is None:
                    self.unowned.append(lead.external_id)
        bulk.leads_upsert(columns=LEAD_COLUMNS, new=new, updates=updates)
        self.created += len(new)
        self.updated += len(updates)

    def finish(self) -> None:
        # New leads without an owner go through the lead intake's assignment decision; an
        # import asks for the assignment rules.
        if self.writing and self.unowned:
            for start in range(0, len(self.unowned), BATCH):
                ids = Lead.objects.filter(
                    external_id__in=self.unowned[start : start + BATCH]
                ).values_list("pk", flat=True)
                self.assigned += lead_intake_assign(list(ids), use_assignment_rules=True)

    def summary(self) -> dict[str, int]:
        return {**super().summary(), "assigned": self.assigned}


# --- deals --------------------------------------------------------------------------------------


class DealsImporter(Importer):
    kind = "deals"
    model = Deal
    defer_indexes = True
    # Marking leads converted batch by batch looks up each lead's deals.
    indexes_read = ("deal_lead_cover",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stages = Stages()
        self.seen: dict[str, int] = {}
        self.names = bulk.NameCache()  # accounts and contacts met in earlier batches
        self.lead_ids: set[int] = set()  # leads of the deals written, to convert at the end

    def parse(self, row: Row):
        ext = self.text(row, "external_id", required=True, max_length=100)
        if ext:
            self.unique(self.seen, row, "external_id", ext)  # reported; the row's other cells too
        stage = self.stages.match(self, row, "stage")
        created_at = self.when(row, "created_at", happened=True, required=True)
        closed_at = self.when(row, "closed_at", happened=True)
        lost_reason = self.lookup(row, "lost_reason", "lost_reason")
        competitor = self.lookup(row, "competitor", "competitor")
        rec = {
            "row": row,
            "deal": Rec(
                external_id=ext,
                lead_id=None,
                lead_source_id=None,
                account_id=None,
                contact_id=None,
                name=self.text(row, "name", required=True, max_length=200),
                amount=self.money(row, "amount"),
                pipeline_id=self.stages.pipeline.pk,
                stage_id=stage.pk if stage else None,
                owner_id=self.lookup(row, "owner", "owner"),
                source_id=self.lookup(row, "source", "source"),
                industry_id=self.lookup(row, "industry", "industry"),
                created_at=created_at,
                expected_close_date=self.date(row, "expected_close_date"),
                closed_at=closed_at,
                lost_reason_id=lost_reason,
                competitor_id=competitor,
                next_follow_up=self.when(row, "next_follow_up", happened=False),
            ),
            "lead": self.text(row, "lead_external_id", max_length=100),
            "account": self.text(row, "account", max_length=200),
            "contact": self.text(row, "contact", max_length=200),
        }
        if stage is None:
            return rec
        # Closing rules of deal_move: won/lost need closed_at; lost needs a reason, and the
        # competitor when the reason says so; an open deal is not closed.
        if stage.kind != StageKind.OPEN and closed_at is None and not row["closed_at"]:
            self.error(row, "closed_at", "", _("a %(k)s deal needs closed_at") % {"k": stage.kind})
        if stage.kind == StageKind.OPEN and closed_at is not None:
            self.error(
                row,
                "closed_at",
                row["closed_at"],
                _("an open deal (stage %(s)s) has no closed_at") % {"s": stage.key},
            )
        if closed_at and created_at and closed_at < created_at:
            self.error(
                row,
                "closed_at",
                row["closed_at"],
                _("before the deal's created_at (%(c)s)") % {"c": row["created_at"]},
            )
        if stage.kind == StageKind.LOST:
            if not row["lost_reason"]:
                self.error(row, "lost_reason", "", _("a lost deal needs a lost reason"))
            elif lost_reason in self.lookups.needs_competitor and not row["competitor"]:
                self.error(
                    row,
                    "competitor",
                    "",
                    _("lost reason '%(r)s' needs the competitor the deal was lost to")
                    % {"r": row["lost_reason"]},
                )
        else:
            for col in ("lost_reason", "competitor"):
                if row[col]:
                    self.error(row, col, row[col], _("only a lost deal has a %(c)s") % {"c": col})
        return rec

    def batch(self, records: list[dict]) -> None:
        leads = _existing(
            Lead,
            {r["lead"] for r in records if r["lead"]},
            "id",
            "owner_id",
            "source_id",
            "industry_id",
            "created_at",
        )
        existing = (
            {} if self.fresh else _existing(Deal, (r["deal"].external_id for r in records), "id")
        )
        ok = []
        for r in records:
            deal, row = r["deal"], r["row"]
            before = len(self.errors)
            if r["lead"]:
                lead = leads.get(r["lead"])
                if lead is None:
                    self.error(
                        row,
                        "lead_external_id",
                        r["lead"],
                        _("no lead with this external_id in the database"),
                    )
                    continue
                lead_id, owner_id, source_id, industry_id, lead_created = lead
                deal.lead_id = lead_id
                deal.lead_source_id = source_id
                deal.owner_id = deal.owner_id or owner_id
                deal.source_id = deal.source_id or source_id
                deal.industry_id = deal.industry_id or industry_id
                if deal.created_at < lead_created:
                    self.error(
                        row,
                        "created_at",
                        row["created_at"],
                        _("before its lead was created (%(c)s)")
                        % {"c": timezone.localtime(lead_created).isoformat()},
                    )
            if deal.owner_id is None:
                self.error(
                    row, "owner", "", _("the deal needs an owner (none given and no lead owner)")
                )
            if deal.amount is None:
                deal.amount = Decimal("0.00")
            for field in self.stages.required[deal.stage_id]:
                filled = {
                    "amount": deal.amount > 0,
                    "expected_close_date": deal.expected_close_date is not None,
                    "account": bool(r["account"]),
                    "contact": bool(r["contact"]),
                    "source": deal.source_id is not None,
                    "industry": deal.industry_id is not None,
                    "next_follow_up": deal.next_follow_up is not None,
                }[field]
                if not filled:
                    self.error(
                        row,
                        field,
                        row[field],
                        _("required to be in stage %(s)s (must be filled%(gt)s)")
                        % {
                            "s": self.stages.by_id[deal.stage_id].key,
                            "gt": _(" and above 0") if field == "amount" else "",
                        },
                    )
            if len(self.errors) == before:
                ok.append(r)
        if not self.writing:
            return
        # Accounts and contacts are matched by name (as a user of the file sees them). A new
        # one belongs to the owner of the first deal that names it, as a conversion gives them
        # the rep's: left unassigned, it would be every manager's to see.
        account_first = {}
        for r in ok:
            if r["account"]:
                account_first.setdefault(r["account"], r["deal"])
        accounts = bulk.accounts_get_or_create(
            set(account_first),
            created_at={k: d.created_at for k, d in account_first.items()},
            owner={k: d.owner_id for k, d in account_first.items()},
            cache=self.names,
        )
        contact_first = {}
        for r in ok:
            if r["contact"]:
                contact_first.setdefault((accounts.get(r["account"]), r["contact"]), r["deal"])
        contacts = bulk.contacts_get_or_create(
            set(contact_first),
            created_at={k: d.created_at for k, d in contact_first.items()},
            owner={k: d.owner_id for k, d in contact_first.items()},
            cache=self.names,
        )
        new, updates = [], []
        first_open = self.stages.first_open.pk
        values = itemgetter(*DEAL_COLUMNS)
        for r in ok:
            deal = r["deal"]
            deal.account_id = accounts.get(r["account"]) if r["account"] else None
            deal.contact_id = contacts[(deal.account_id, r["contact"])] if r["contact"] else None
            found = existing.get(deal.external_id)
            if found:
                updates.append(Deal(pk=found[0], **deal))
            else:
                # The facts of a deal without history (CONTRACT §4, deals_refresh_facts).
                lost = deal.stage_id in self.stages.lost_ids
                new.append(
                    (
                        *values(deal),
                        self.stages.order[first_open if lost else deal.stage_id],
                        deal.created_at,
                        first_open if lost else None,
                    )
                )
        lead_ids = bulk.deals_upsert(
            columns=DEAL_COLUMNS + DEAL_FACTS,
            new=new,
            updates=updates,
            now=self.now,
            mark_converted=False,
        )
        if bulk.writing_in_background():
            # SQLite: the writer thread marks them while this one parses the next batch.
            bulk.leads_mark_converted(sorted(lead_ids), queued=True)
        else:
            # PostgreSQL: once at the end, with fresh planner statistics of the deals.
            self.lead_ids |= lead_ids
        self.created += len(new)
        self.updated += len(updates)

    def finish(self) -> None:
        if self.writing and self.lead_ids:
            bulk.leads_mark_converted(sorted(self.lead_ids))


# --- stage history ------------------------------------------------------------------------------


class StageHistoryImporter(Importer):
    kind = "stage-history"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stages = Stages()
        # deal external_id → [(entered_at, row number, stage id, stage text, time text)]
        self.groups: dict[str, list[tuple]] = {}

    def parse(self, row: Row):
        ext = self.text(row, "deal_external_id", required=True, max_length=100)
        stage = self.stages.match(self, row, "stage")
        at = self.when(row, "entered_at", happened=True, required=True)
        if ext and stage and at:
            self.groups.setdefault(ext, []).append(
                (at, row.n, stage.pk, row["stage"], row["entered_at"])
            )
        return None

    def batch(self, records) -> None:
        pass

    def finish(self) -> None:
        deals = _existing(Deal, self.groups, "id", "stage_id", "created_at", "closed_at")
        histories: dict[int, list[tuple[int, dt.datetime]]] = {}
        created: dict[int, dt.datetime] = {}
        for ext, entries in self.groups.items():
            deal = deals.get(ext)
            if deal is None:
                for e in entries:
                    self.error(
                        e[1],
                        "deal_external_id",
                        ext,
                        _("no deal with this external_id in the database"),
                    )
                continue
            deal_id, stage_id, created_at, closed_at = deal
            entries.sort(key=lambda e: (e[0], e[1]))
            bad = False
            previous = None
            for e in entries:
                if e[0] < created_at:
                    self.error(
                        e[1],
                        "entered_at",
                        e[4],
                        _("before the deal was created (%(c)s)")
                        % {"c": timezone.localtime(created_at).isoformat()},
                    )
                    bad = True
                if previous is not None and previous[2] == e[2]:
                    self.error(
                        e[1],
                        "stage",
                        e[3],
                        _(
                            "the deal is already in this stage (row %(n)s); each row is an entry into a new stage"
                        )
                        % {"n": previous[1]},
                    )
                    bad = True
                previous = e
            last = entries[-1]
            if last[2] != stage_id:
                self.error(
                    last[1],
                    "stage",
                    last[3],
                    _("the deal's latest entry must be its current stage %(s)s")
                    % {"s": self.stages.by_id[stage_id].key},
                )
                bad = True
            elif closed_at is not None and last[0] != closed_at:
                self.error(
                    last[1],
                    "entered_at",
                    last[4],
                    _("the deal was closed at %(c)s; its entry into %(s)s must be at that time")
                    % {
                        "c": timezone.localtime(closed_at).isoformat(),
                        "s": self.stages.by_id[stage_id].key,
                    },
                )
                bad = True
            if not bad:
                histories[deal_id] = [(e[2], e[0]) for e in entries]
                created[deal_id] = created_at
        self.updated = len(histories)  # deals whose history was replaced
        if self.writing:
            # Many deals' facts and history entries are rewritten: their tallies are recounted
            # once instead.
            entries = sum(len(h) for h in histories.values())
            with bulk.tallies_recounted(
                deals=len(histories) > TALLY_RECOUNT_FROM, history=entries > TALLY_RECOUNT_FROM
            ):
                bulk.stage_history_replace(histories, created)

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "deals": self.updated}


# --- activities ---------------------------------------------------------------------------------


class ActivitiesImporter(Importer):
    kind = "activities"
    model = Activity

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.kinds = choice_map(ActivityKind.choices)
        self.seen: dict[str, int] = {}
        self.deal_ids: set[int] = set()
        self.touched_deals: set[int] = set()
        self.lead_ids: set[int] = set()
        self.left_deals: set[int] = set()  # deals an updated activity moved away from
        self.deals = References(Deal, "id", "lead_id", "owner_id")
        self.leads = References(Lead, "id", "owner_id")

    def parse(self, row: Row):
        ext = self.text(row, "external_id", required=True, max_length=100)
        if ext:
            self.unique(self.seen, row, "external_id", ext)  # reported; the row's other cells too
        deal = self.text(row, "deal_external_id", max_length=100)
        lead = self.text(row, "lead_external_id", max_length=100)
        if not deal and not lead:
            self.error(
                row,
                "deal_external_id",
                "",
                _("an activity belongs to a deal or a lead; give one of them"),
            )
        done_at = self.when(row, "done_at", happened=True)
        due_at = self.when(row, "due_at", happened=False)
        return {
            "row": row,
            "deal": deal,
            "lead": lead,
            "activity": Rec(
                external_id=ext,
                kind=self.choice(row, "kind", self.kinds, None),
                subject=row["subject"][:200],
                owner_id=self.lookup(row, "owner", "owner"),
                due_at=due_at,
                done_at=done_at,
                notes=row["notes"],
            ),
        }

    def batch(self, records: list[dict]) -> None:
        # Ids and owners only: a datetime costs a conversion per fetched row, and created_at
        # is needed just for the rare activity with neither done_at nor due_at.
        deals = self.deals.lookup({r["deal"] for r in records if r["deal"]})
        leads = self.leads.lookup({r["lead"] for r in records if r["lead"]})
        undated = [r for r in records if not (r["activity"].done_at or r["activity"].due_at)]
        if undated:
            deal_created = _existing(Deal, {r["deal"] for r in undated if r["deal"]}, "created_at")
            lead_created = _existing(Lead, {r["lead"] for r in undated if r["lead"]}, "created_at")
        existing = (
            {}
            if self.fresh
            else _existing(
                Activity, (r["activity"].external_id for r in records), "id", "deal_id", "lead_id"
            )
        )
        values = itemgetter(*ACTIVITY_COLUMNS)
        deal_ids, lead_ids, touched = self.deal_ids, self.lead_ids, self.touched_deals
        new, updates = [], []
        for r in records:
            a, row = r["activity"], r["row"]
            deal = lead = None
            if r["deal"]:
                deal = deals.get(r["deal"])
                if deal is None:
                    self.error(
                        row,
                        "deal_external_id",
                        r["deal"],
                        _("no deal with this external_id in the database"),
                    )
                    continue
            if r["lead"]:
                lead = leads.get(r["lead"])
                if lead is None:
                    self.error(
                        row,
                        "lead_external_id",
                        r["lead"],
                        _("no lead with this external_id in the database"),
                    )
                    continue
            if deal:
                a.deal_id = deal[0]
                a.lead_id = lead[0] if lead else deal[1]
                owner_id = a.owner_id or deal[2] or (lead[1] if lead else None)
            else:
                a.deal_id = None
                a.lead_id = lead[0]
                owner_id = a.owner_id or lead[1]
            if owner_id is None:
                self.error(
                    row,
                    "owner",
                    "",
                    _("the activity needs an owner (none given, and its lead has none)"),
                )
                continue
            a.owner_id = owner_id
            a.created_at = (
                a.done_at
                or a.due_at
                or (deal_created[r["deal"]][0] if deal else lead_created[r["lead"]][0])
            )
            found = existing.get(a.external_id) if existing else None
            if found:
                updates.append((*values(a), found[0]))
                if found[1]:
                    deal_ids.add(found[1])
                    if found[1] != a.deal_id:
                        self.left_deals.add(found[1])  # its lead may lose this follow-up
                if found[2]:
                    lead_ids.add(found[2])
            else:
                new.append(values(a))
            if deal:
                deal_ids.add(deal[0])
                if a.done_at:
                    touched.add(deal[0])
                if deal[1]:
                    lead_ids.add(deal[1])  # a follow-up on a deal counts for its lead
            if a.lead_id:
                lead_ids.add(a.lead_id)
        if not self.writing:
            return
        bulk.activities_upsert(columns=ACTIVITY_COLUMNS, new=new, updates=updates)
        self.created += len(new)
        self.updated += len(updates)

    def finish(self) -> None:
        if self.writing:
            left = sorted(self.left_deals)
            for i in range(0, len(left), BATCH):
                self.lead_ids.update(
                    Deal.objects.filter(pk__in=left[i : i + BATCH], lead__isnull=False).values_list(
                        "lead_id", flat=True
                    )
                )
            # Many leads' and deals' facts are rewritten: their tallies are recounted instead.
            with bulk.tallies_recounted(
                deals=len(self.deal_ids) > TALLY_RECOUNT_FROM,
                leads=len(self.lead_ids) > TALLY_RECOUNT_FROM,
            ):
                bulk.deals_refresh_follow_ups(
                    sorted(self.deal_ids), touched=sorted(self.touched_deals)
                )
                bulk.leads_refresh_follow_ups(sorted(self.lead_ids))


# --- spend --------------------------------------------------------------------------------------


class SpendImporter(Importer):
    kind = "spend"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: dict[str, int] = {}

    def parse(self, row: Row):
        value = row["month"]
        m = MONTH_RE.match(value)
        month = None
        if m and 1 <= int(m.group(2)) <= 12 and int(m.group(1)) >= 1:
            month = dt.date(int(m.group(1)), int(m.group(2)), 1)
            problem = plan_problem(month)
            if problem:
                self.error(row, "month", value, problem)
                month = None
        else:
            self.error(row, "month", value, _("not a month; use YYYY-MM such as 2026-03"))
        source = self.text(row, "source", required=True, max_length=100)
        amount = self.money(row, "amount", required=True)
        if source and month and not self.unique(self.seen, row, "month", f"{source} {month:%Y-%m}"):
            return None
        if source is None or month is None or amount is None:
            return None
        return Spend(source_id=self.lookups.get("source", source), month=month, amount=amount)

    def batch(self, records: list[Spend]) -> None:
        existing = {
            (s, m): pk
            for s, m, pk in Spend.objects.filter(
                source_id__in={r.source_id for r in records}
            ).values_list("source_id", "month", "id")
        }
        if not self.writing:
            return
        new, updates = [], []
        for s in records:
            pk = existing.get((s.source_id, s.month))
            if pk:
                s.pk = pk
                updates.append(s)
            else:
                new.append(s)
        bulk.spend_upsert(new=new, updates=updates)
        self.created += len(new)
        self.updated += len(updates)


IMPORTERS: dict[str, type[Importer]] = {
    "users": UsersImporter,
    "leads": LeadsImporter,
    "deals": DealsImporter,
    "stage-history": StageHistoryImporter,
    "activities": ActivitiesImporter,
    "spend": SpendImporter,
}
