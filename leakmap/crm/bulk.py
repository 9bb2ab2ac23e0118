"""Bulk writes for imports, upholding the invariants of `leakmap.crm.services` set-wise.

The per-change services keep each fact incrementally; here many rows are written at once with
`bulk_create`/`bulk_update` in batches, and the facts are then recomputed in SQL for the rows that
moved, so that they end up exactly as the services would have left them:

- a deal's history (StageChange rows) is replaced as a whole, chained from → to, and its newest
  entry must be the deal's current stage (checked by the caller before writing);
- a stage change of an existing deal with history is recorded as a StageChange, like deal_move;
- `reached_order`, `lost_at_stage`, `stage_entered_at`, `last_follow_up_at`, `follow_up_count`
  and the lead's `first_contacted_at` are recomputed from the record (services.deals_refresh_facts
  and the follow-up variant below);
- a deal with a lead marks that lead converted at the deal's created_at (the earliest deal's);
- a follow-up on a new lead makes it contacted, and clears a passed next follow-up and
  "needs attention" on the deal, as `activity_log` does.

Callers validate first and call these inside one transaction; on their own each is atomic, and
within the caller's transaction they set no savepoint of their own (an import that fails
rolls back as a whole, and a savepoint per batch would wait for the writer thread).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import chain

from django.conf import settings
from django.db import connection, models, transaction
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX
from django.db.models import F, Min, OuterRef, Subquery
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from leakmap.accounts.models import Team, User
from leakmap.crm import services, tallies
from leakmap.crm.models import (
    Account,
    Activity,
    Contact,
    Deal,
    Lead,
    LeadStatus,
    Spend,
    Stage,
    StageChange,
    StageKind,
    TallySwitch,
    whole_seconds,
)

BATCH = 2000
HISTORY_CHUNK = 5000  # deals whose history is replaced per statement group

DEAL_FIELDS = [
    "lead",
    "name",
    "account",
    "contact",
    "amount",
    "stage",
    "owner",
    "source",
    "industry",
    "created_at",
    "expected_close_date",
    "closed_at",
    "lost_reason",
    "competitor",
    "next_follow_up",
    "lead_source",
]


def chunks(seq: Sequence, size: int = BATCH) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _datetime_adapter():
    """The backend's datetime adapter; on SQLite with UTC storage (Django's default) the same
    conversion without its per-value settings lookups, which dominate a million-row insert."""
    ops = connection.ops
    if connection.vendor == "sqlite" and settings.USE_TZ and connection.timezone == dt.UTC:
        return _adapt_utc_text
    return ops.adapt_datetimefield_value


# Datetime → its SQLite text, for values met again: imported times repeat (minutes, a deal's
# created_at on each of its rows), and the conversion is several µs. Equal aware datetimes are
# the same instant, hence the same UTC text; fold=1 values are not cached (equality ignores
# fold within one zone). Bounded, so memory stays flat.
_UTC_TEXT: dict[dt.datetime, str] = {}


def _adapt_utc_text(value: dt.datetime) -> str:
    text = _UTC_TEXT.get(value)
    if text is None:
        if value.tzinfo is not None:
            text = str(value.astimezone(dt.UTC).replace(tzinfo=None))
        else:
            text = str(value)
        if not value.fold:
            if len(_UTC_TEXT) >= 100_000:
                _UTC_TEXT.clear()
            _UTC_TEXT[value] = text
    return text


def insert_rows(
    model, columns: list[str], rows: Sequence[Sequence], *, background: bool = True
) -> None:
    """INSERT many rows of `model` with one executemany per 5,000 rows (or, within
    `background_writes`, queued for the writer thread unless background=False).

    This is bulk_create without its per-value compilation, which costs more than the database
    on a million rows: `columns` are attnames, values are Python values converted once per
    column with the backend's own adapters, and every column left out gets its model default
    (auto_now columns the current time), as save() would give it. The caller validates.
    """
    if not rows:
        return
    ops = connection.ops
    now = timezone.now()
    fields = [model._meta.get_field(c) for c in columns]
    converters = []
    for f in fields:
        if isinstance(f, models.DateTimeField):
            converters.append(_datetime_adapter())
        elif isinstance(f, models.DateField):
            converters.append(ops.adapt_datefield_value)
        elif isinstance(f, models.DecimalField):
            converters.append(
                lambda v, f=f: ops.adapt_decimalfield_value(v, f.max_digits, f.decimal_places)
            )
        else:
            converters.append(None)
    given = {f.attname for f in fields}
    rest = [
        f
        for f in model._meta.concrete_fields
        if f.attname not in given and not f.primary_key and not f.generated
    ]
    rest_values = []
    for f in rest:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        rest_values.append(f.get_db_prep_save(value, connection))
    names = [f.column for f in fields] + [f.column for f in rest]
    row = "({})".format(", ".join(["%s"] * len(names)))
    sql = "INSERT INTO {} ({}) VALUES ".format(
        ops.quote_name(model._meta.db_table), ", ".join(ops.quote_name(n) for n in names)
    )
    tail = tuple(rest_values)
    plain = all(c is None for c in converters)
    convert = [(i, c) for i, c in enumerate(converters) if c is not None]
    writer = _writer if background else None
    # PostgreSQL runs an executemany as one statement per row, each firing the tallies'
    # statement triggers: there one INSERT of many rows (up to its 65,535 parameters) instead.
    many = writer is None and connection.vendor == "postgresql"
    if writer is not None:
        writer.check()
        size = writer.rows_per_statement(len(names))
    else:
        size = min(5000, 65535 // len(names)) if many else 5000
    with connection.cursor() as cursor:
        for part in chunks(rows, size):
            if plain:
                params = [tuple(r) + tail for r in part]
            else:
                params = [_converted(r, convert) + tail for r in part]
            if writer is not None:
                writer.insert(model._meta.db_table, names, params)
            elif many:
                cursor.execute(
                    sql + ", ".join([row] * len(params)), list(chain.from_iterable(params))
                )
            else:
                cursor.executemany(sql + row, params)


def _converted(row: Sequence, convert: list[tuple[int, Callable]]) -> tuple:
    """`row` with the values at the given positions converted (None stays None)."""
    out = list(row)
    for i, c in convert:
        v = out[i]
        if v is not None:
            out[i] = c(v)
    return tuple(out)


class _Writer:
    """INSERTs of an import run on a second thread, on the import's own SQLite connection and
    inside its transaction, while the first thread parses and checks the next batch.

    SQLite releases the GIL while it works, so the B-tree work of the inserts (most of the time
    of a large import, with a dozen indexes per table) overlaps the Python work on a second
    core. Each statement inserts a few thousand rows (a multi-row VALUES), so the writer needs
    the GIL only briefly per statement. Statements run in the order they were queued; `flush`
    waits for them all, and must precede any read of rows written this way (the bulk functions
    below do it). The first error stops the writer and is raised in the importing thread.
    """

    def __init__(self, conn):
        self.conn = conn  # the DB-API connection of django.db.connection
        self.limit = min(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), 32766)
        self.queue: queue.Queue = queue.Queue(maxsize=3)
        self.error: BaseException | None = None
        self.next_ids: dict[str, int] = {}  # table → next primary key (reserve_ids)
        self.thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self.thread.start()

    def rows_per_statement(self, width: int) -> int:
        # Small enough that a read of the importing thread, which waits for the statement
        # running, waits a few ms; large enough that the GIL is taken rarely.
        return max(1, min(self.limit, 8192) // max(width, 1))

    def insert(self, table: str, names: list[str], params: list[tuple]) -> None:
        self.check()
        row = "({})".format(", ".join(["?"] * len(names)))
        sql = "INSERT INTO {} ({}) VALUES {}".format(
            connection.ops.quote_name(table),
            ", ".join(connection.ops.quote_name(n) for n in names),
            ", ".join([row] * len(params)),
        )
        self.queue.put((sql, list(chain.from_iterable(params))))

    def reserve_ids(self, model, n: int) -> range:
        """`n` primary keys for rows of `model` that this import will insert with explicit ids
        (so that their ids are known without waiting for the INSERT). Safe because the import
        holds SQLite's write lock from the first call on: no other connection can add rows
        until it commits. Every insert of `model` during the import must take its ids here."""
        table = model._meta.db_table
        if table not in self.next_ids:
            self.flush()
            qn = connection.ops.quote_name
            with connection.cursor() as cursor:
                # A write that changes nothing still takes the database's write lock.
                cursor.execute(f"UPDATE {qn(table)} SET id = id WHERE 0")
                # AUTOINCREMENT never hands out an id again, even one whose row was deleted:
                # start after the larger of the table's largest id and its sequence.
                cursor.execute(
                    f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {qn(table)}), 0),"
                    " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0))",
                    [table],
                )
                self.next_ids[table] = cursor.fetchone()[0] + 1
        start = self.next_ids[table]
        self.next_ids[table] = start + n
        return range(start, start + n)

    def execute(self, sql: str, params: list) -> None:
        """Queue any statement (written with %s placeholders, as Django's cursor takes them) to
        run after the ones before. The placeholders are converted as Django's SQLite cursor does
        (a literal %% stays one %), since the writer runs on the bare sqlite3 cursor."""
        self.check()
        self.queue.put((FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%"), list(params)))

    def _run(self) -> None:
        cursor = self.conn.cursor()
        try:
            while True:
                job = self.queue.get()
                try:
                    if job is None:
                        return
                    if self.error is None:
                        cursor.execute(*job)
                except BaseException as exc:  # raised in the importing thread by check()
                    self.error = exc
                finally:
                    self.queue.task_done()
        finally:
            cursor.close()

    def check(self) -> None:
        if self.error is not None:
            with connection.wrap_database_errors:
                raise self.error

    def flush(self) -> None:
        self.queue.join()
        self.check()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()


_writer: _Writer | None = None


@contextlib.contextmanager
def background_writes():
    """Within this block (inside the import's transaction), `insert_rows` on SQLite queues
    its INSERTs for a second thread (see _Writer); on leaving it every one has run, or on an
    error the rest are dropped before the transaction rolls back. Other backends: a no-op."""
    global _writer
    if connection.vendor != "sqlite" or _writer is not None:
        yield
        return
    connection.ensure_connection()
    writer = _Writer(connection.connection)
    _writer = writer
    # The writer wants the GIL back after each statement; the default 5 ms switch interval
    # would leave it idle that long every time.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        yield
        writer.flush()
    finally:
        _writer = None
        if writer.error is None and not writer.queue.empty():
            writer.error = RuntimeError("import aborted")  # drop what is still queued
        writer.stop()
        sys.setswitchinterval(interval)


def writing_in_background() -> bool:
    """Whether writes may be queued for the writer thread (an import on SQLite)."""
    return _writer is not None


@contextlib.contextmanager
def indexes_deferred(model, *, keep: Sequence[str] = ()):
    """Within an import on SQLite (background_writes) that fills `model`'s empty table: drop
    the table's secondary indexes (but those named in `keep`, which the import reads through
    while it runs), and build them again once every row is in.

    Sorting a million keys once costs a fraction of inserting them one by one into half a
    dozen B-trees in random order (e-mails, phones, owners): measured on 1M leads, three fewer
    indexes took 4 s off a 27 s import. The rebuild runs on the importing thread, after the
    parsing: it pays only where the writer thread, not the parsing, sets the pace. Unique
    indexes stay. The drop and the rebuild belong to the import's transaction: a failed import
    rolls both back, and other connections keep reading the indexes they had."""
    if _writer is None:
        yield
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
            [model._meta.db_table],
        )
        found = cursor.fetchall()
        cursor.execute(f"PRAGMA index_list({qn(model._meta.db_table)})")
        unique = {row[1] for row in cursor.fetchall() if row[2]}  # (seq, name, unique, …)
        dropped = [(name, sql) for name, sql in found if name not in keep and name not in unique]
        for name, _sql in dropped:
            cursor.execute(f"DROP INDEX {qn(name)}")
    yield
    flush_writes()
    with connection.cursor() as cursor:
        for _name, sql in dropped:
            cursor.execute(sql)


@contextlib.contextmanager
def tallies_recounted(*, leads: bool = False, deals: bool = False, history: bool = False):
    """Around a bulk write that rewrites most leads', deals' or history entries' counted
    columns. SQLite's tally triggers fire once a row (with them the activities import of the 1M
    set took 21 s longer, by an estimated ~1.8 million rewrites: ~12 µs each); here they stand
    aside and the tallies are counted anew at the end (3.6 s for a million leads, 1.2 s for
    300k deals, well under a second for a million history entries), all in the caller's
    transaction, so no reader sees the pause and an error rolls it back.
    PostgreSQL's statement triggers cost one grouped upsert a statement: nothing to pause."""
    paused = {"leads": leads, "deals": deals, "history": history}
    if connection.vendor != "sqlite" or not any(paused.values()):
        yield
        return
    with transaction.atomic(savepoint=False):
        TallySwitch.objects.update_or_create(
            pk=1, defaults={f"{k}_paused": v for k, v in paused.items()}
        )
        yield
        flush_writes()
        for kind in (k for k, wanted in paused.items() if wanted):
            tallies.recount(tallies.paused_by(kind))
        TallySwitch.objects.filter(pk=1).update(**{f"{k}_paused": False for k in paused})


def flush_writes() -> None:
    """Wait for the queued INSERTs (background_writes) before reading what they wrote."""
    if _writer is not None:
        _writer.flush()


# A table an import leaves with more than this many times the pages its rows need, and at
# least MIN_WASTED_PAGES (8 KiB each) to spare, is rewritten compactly (vacuum_after_import).
SPARSE_RATIO = 1.5
MIN_WASTED_PAGES = 1280


def vacuum_after_import() -> None:
    """On PostgreSQL, after an import has committed: VACUUM (ANALYZE) the tables imports fill.

    Rows a bulk import just wrote are not yet marked all-visible, so until autovacuum comes
    round every index-only scan fetches each row from the heap as well: stage-time's grouped
    read of the stage_stay_sorted index ran as a sequential scan and a hash aggregate instead
    of an index-only walk. VACUUM cannot run inside the
    import's transaction, which is why it comes after the commit."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {_imported_tables()}")
        # The imports of deals, stage history and activities update the deals (and leads) they
        # touch, each update a new row version: after a large import the deals' heap is mostly
        # dead versions and their indexes bloated, and the reports that read every deal are
        # slower for it. VACUUM frees the space for reuse but does not give it back; FULL
        # rewrites the table and its indexes (each locked for its turn), and
        # the plain VACUUM after it sets the visibility map FULL leaves unset.
        for table in _sparse_tables(cursor):
            cursor.execute(f"VACUUM (FULL, ANALYZE) {qn(table)}")
            cursor.execute(f"VACUUM {qn(table)}")
        # The tallies' statement triggers rewrite each counted row once per batch that
        # touches it, and every rewrite leaves the old version behind: a few thousand counted
        # rows end up among a million dead versions, which every read crosses. VACUUM frees
        # that space for reuse but reads still cross it; FULL rewrites these small tables
        # compactly (locking each for its turn).
        tables = ", ".join(qn(t.table) for t in tallies.TALLIES)
        cursor.execute(f"VACUUM (FULL, ANALYZE) {tables}")


def _sparse_tables(cursor) -> list[str]:
    """The imported tables whose heap is mostly space their rows do not need: pages against
    the pages their rows fill by the statistics ANALYZE just took (rows x (mean width + 28
    bytes of tuple header and line pointer)); that estimate came within 1-9 % of the tables'
    rewritten sizes at a million leads."""
    tables = [m._meta.db_table for m in (Lead, Deal, StageChange, Activity)]
    cursor.execute(
        """
        SELECT c.relname, c.relpages,
               c.reltuples * (COALESCE(SUM(s.avg_width), 0) + 28) / 8192
        FROM pg_class c
        LEFT JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = c.relname
        WHERE c.relname = ANY(%s) AND c.relnamespace = to_regnamespace(current_schema())
          AND c.reltuples >= 0
        GROUP BY c.relname, c.relpages, c.reltuples
        """,
        [tables],
    )
    return [
        name
        for name, pages, needed in cursor.fetchall()
        if pages > SPARSE_RATIO * needed and pages - needed >= MIN_WASTED_PAGES
    ]


def _imported_tables() -> str:
    """The tables imports fill, quoted and comma-separated, for VACUUM and ANALYZE: the deals
    import creates accounts and contacts too (never analyzed, their planner estimates go
    wrong once an index on contacts has set their row count)."""
    qn = connection.ops.quote_name
    models = (Lead, Deal, StageChange, Activity, Account, Contact)
    return ", ".join(qn(m._meta.db_table) for m in models)


def refresh_statistics() -> None:
    """On PostgreSQL, refresh the planner's statistics of the tables an import fills, before
    the facts are recomputed from them.

    A bulk import grows tables from nothing faster than autovacuum analyzes them, and the facts
    refresh is then planned as if they were still empty. Measured on 100k leads, fresh
    database, wall time: stage-history 30.1 s → 16.3 s, activities 46.8 s → 32.3 s (the 1M
    import took about an hour in all before)."""
    flush_writes()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {_imported_tables()}")


def update_rows(model, columns: list[str], rows: Sequence[Sequence]) -> None:
    """UPDATE `columns` (attnames) of many rows by primary key — rows are (values…, pk) — with
    one executemany per 5,000 rows; Django's bulk_update builds a CASE per column and row,
    which grows too slow for a re-import of a million rows."""
    if not rows:
        return
    ops = connection.ops
    fields = [model._meta.get_field(c) for c in columns]
    adapt_dt = _datetime_adapter()
    converters = [
        adapt_dt
        if isinstance(f, models.DateTimeField)
        else (lambda v, f=f: f.get_db_prep_save(v, connection))
        for f in fields
    ]
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        ops.quote_name(model._meta.db_table),
        ", ".join(f"{ops.quote_name(f.column)} = %s" for f in fields),
        ops.quote_name(model._meta.pk.column),
    )
    with connection.cursor() as cursor:
        for part in chunks(rows, 5000):
            cursor.executemany(
                sql,
                [
                    tuple(
                        None if v is None else c(v) for c, v in zip(converters, r[:-1], strict=True)
                    )
                    + (r[-1],)
                    for r in part
                ],
            )


# --- Users --------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def users_upsert(*, new: list[User], updates: list[User], managers: dict[str, str | None]) -> None:
    """Create and update logins; new ones without a usable password (an admin sets it).
    `managers` maps username → manager's username, set once every user exists."""
    for user in new:
        user.set_unusable_password()
        user.is_staff = user.is_superuser = user.role == "admin"
    User.objects.bulk_create(new, batch_size=BATCH)
    for user in updates:
        user.is_staff = user.is_superuser = user.role == "admin" or user.is_superuser
    User.objects.bulk_update(
        updates, ["display_name", "role", "team", "email", "is_staff", "is_superuser"], BATCH
    )
    ids = dict(User.objects.filter(username__in=list(managers)).values_list("username", "id"))
    ids.update(
        User.objects.filter(
            username__in=[m for m in managers.values() if m and m not in ids]
        ).values_list("username", "id")
    )
    by_manager: dict[int | None, list[int]] = {}
    for username, manager in managers.items():
        by_manager.setdefault(ids[manager] if manager else None, []).append(ids[username])
    for manager_id, user_ids in by_manager.items():
        User.objects.filter(pk__in=user_ids).update(manager_id=manager_id)


def owner_create(username: str) -> User:
    """An owner named in an import who has no login yet: a rep who cannot log in until an
    admin sets a password (like `user_create` without a password)."""
    user = User(username=username, role="rep")
    user.set_unusable_password()
    user.save()
    return user


def team_get_or_create(name: str) -> Team:
    return Team.objects.get_or_create(name=name.strip())[0]


# --- Leads --------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def leads_upsert(*, columns: list[str], new: list[tuple], updates: list[tuple]) -> None:
    """Insert new leads (`columns` attnames, one tuple per lead) and update existing ones' own
    fields (`updates`: the same columns then the pk). Facts kept by the system (converted_at,
    first_contacted_at) are never taken from a file: a lead with a deal stays converted, and
    one with a follow-up is at least contacted."""
    insert_rows(Lead, columns, new)
    if updates:
        flush_writes()
        update_rows(Lead, columns, updates)
        for part in chunks([row[-1] for row in updates]):
            if "source_id" in columns:
                services.deals_refresh_lead_source(part)
            leads = Lead.objects.filter(pk__in=part)
            leads.filter(converted_at__isnull=False).exclude(status=LeadStatus.CONVERTED).update(
                status=LeadStatus.CONVERTED, disqualified_reason=""
            )
            leads.filter(status=LeadStatus.NEW, first_contacted_at__isnull=False).update(
                status=LeadStatus.CONTACTED
            )


# --- Accounts and contacts named by deals -------------------------------------------------------


class NameCache:
    """What accounts_get_or_create and contacts_get_or_create learnt in earlier batches of one
    import: account name → id, (account id, contact name) → id, and the accounts whose contacts
    are all in `contacts` (loaded once, or created here). Without it every batch re-read every
    contact of its accounts, and a popular company name has thousands: deals at 1M spent a
    third of their time there."""

    def __init__(self):
        self.accounts: dict[str, int] = {}
        self.contacts: dict[tuple[int | None, str], int] = {}
        self.complete: set[int] = set()


def _insert_returning_ids(model, columns: list[str], rows: list[tuple], keys: int) -> dict:
    """insert_rows, then (the first `keys` columns) → id of each row inserted; one column: the
    key is the value itself. In an import on SQLite the ids are reserved (_Writer.reserve_ids)
    and the INSERT queued; otherwise the rows are read back by primary key above the largest
    one before (should another session add an equal row meanwhile, the first by id wins, as a
    lookup would)."""
    if not rows:
        return {}
    if _writer is not None:
        # SQLite import: the ids are chosen here and the INSERT goes to the writer thread.
        ids = _writer.reserve_ids(model, len(rows))
        insert_rows(
            model, ["id", *columns], [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
        )
        return {
            (row[0] if keys == 1 else tuple(row[:keys])): pk
            for pk, row in zip(ids, rows, strict=True)
        }
    before = model.objects.aggregate(m=models.Max("pk"))["m"] or 0
    insert_rows(model, columns, rows, background=False)
    out: dict = {}
    for row in (
        model.objects.filter(pk__gt=before).order_by("pk").values_list(*columns[:keys], "pk")
    ):
        out.setdefault(row[0] if keys == 1 else row[:-1], row[-1])
    return out


def accounts_get_or_create(
    names: set[str],
    *,
    created_at: dict[str, dt.datetime],
    owner: dict[str, int | None],
    cache: NameCache | None = None,
) -> dict:
    """Account name → id, creating those that do not exist (the oldest one wins a name); a new
    one is created at `created_at[name]` for `owner[name]`, as a conversion would."""
    cache = cache or NameCache()
    found = cache.accounts
    wanted = sorted(n for n in names if n not in found)
    for part in chunks(wanted):
        for name, pk in (
            Account.objects.filter(name__in=part).order_by("-id").values_list("name", "id")
        ):
            found[name] = pk
    missing = [(n, created_at[n], owner[n]) for n in wanted if n not in found]
    created = _insert_returning_ids(Account, ["name", "created_at", "owner_id"], missing, 1)
    found.update(created)
    cache.complete.update(created.values())  # a new account has no contacts yet
    return {n: found[n] for n in names}


def contacts_get_or_create(
    keys: set[tuple[int | None, str]],
    *,
    created_at: dict[tuple[int | None, str], dt.datetime],
    owner: dict[tuple[int | None, str], int | None],
    cache: NameCache | None = None,
) -> dict:
    """(account id, contact name) → id, creating the missing ones (the oldest one wins) at
    `created_at[key]` for `owner[key]`."""
    cache = cache or NameCache()
    found = cache.contacts
    # By account (an indexed foreign key), once per account; contacts without one by name.
    account_ids = sorted({a for a, _ in keys if a is not None and a not in cache.complete})
    for part in chunks(account_ids):
        for account_id, name, pk in (
            Contact.objects.filter(account_id__in=part)
            .order_by("-id")
            .values_list("account_id", "name", "id")
        ):
            found[(account_id, name)] = pk
        cache.complete.update(part)
    loose = sorted({n for a, n in keys if a is None and (None, n) not in found})
    for part in chunks(loose):
        for name, pk in (
            Contact.objects.filter(account__isnull=True, name__in=part)
            .order_by("-id")
            .values_list("name", "id")
        ):
            found[(None, name)] = pk
    missing = [
        (k[0], k[1], created_at[k], owner[k])
        # Not `keys - found.keys()`: that walks every contact found so far, per batch.
        for k in sorted((k for k in keys if k not in found), key=lambda k: (k[0] or 0, k[1]))
    ]
    found.update(
        _insert_returning_ids(Contact, ["account_id", "name", "created_at", "owner_id"], missing, 2)
    )
    return {k: found[k] for k in keys}


# --- Deals --------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def deals_upsert(
    *,
    columns: list[str],
    new: list[tuple],
    updates: list[Deal],
    now: dt.datetime,
    mark_converted: bool = True,
) -> set[int]:
    """Insert new deals (`columns` attnames, which must include the facts a deal without
    history has — CONTRACT §4 — computed by the caller) and update existing ones. An existing
    deal with history whose stage changes gets a StageChange, as deal_move would record; its
    facts are then recomputed from the record. Returns the ids of the deals' leads, which are
    marked converted here, or with mark_converted=False by the caller (an import: batch by
    batch on the writer thread, or once at the end)."""
    insert_rows(Deal, columns, new)

    if updates:
        flush_writes()
        ids = [d.pk for d in updates]
        latest: dict[int, tuple[int, dt.datetime]] = {}
        newest = StageChange.objects.filter(deal=OuterRef("pk")).order_by("-at", "-id")
        for part in chunks(ids):
            for pk, to_stage, at in (
                Deal.objects.filter(pk__in=part)
                .annotate(
                    s=Subquery(newest.values("to_stage")[:1]), a=Subquery(newest.values("at")[:1])
                )
                .filter(s__isnull=False)
                .values_list("pk", "s", "a")
            ):
                latest[pk] = (to_stage, at)
        moves = []
        for deal in updates:
            if deal.pk in latest and latest[deal.pk][0] != deal.stage_id:
                at = max(deal.closed_at or now, latest[deal.pk][1], deal.created_at)
                moves.append(
                    StageChange(
                        deal_id=deal.pk,
                        from_stage_id=latest[deal.pk][0],
                        to_stage_id=deal.stage_id,
                        at=at,
                    )
                )
        StageChange.objects.bulk_create(moves, batch_size=BATCH)
        # update_rows, not Django's bulk_update: its CASE per column and row made a re-import
        # of a million leads' 298k deals take about 8 minutes.
        attnames = [Deal._meta.get_field(f).attname for f in DEAL_FIELDS]
        update_rows(Deal, attnames, [(*(getattr(d, a) for a in attnames), d.pk) for d in updates])
        for part in chunks(ids):
            services.deals_refresh_facts(list(part))
            # Every updated deal's entries, not only the moved ones': an entry's reach_seconds
            # counts from the deal's created_at, which the file may have changed.
            services.stage_entries_refresh_facts(list(part))

    lead_ids = {d.lead_id for d in updates if d.lead_id}
    if "lead_id" in columns:
        i = columns.index("lead_id")
        lead_ids.update(r[i] for r in new if r[i])
    if mark_converted:
        leads_mark_converted(sorted(lead_ids))
    return lead_ids


def leads_mark_converted(lead_ids: Sequence[int], *, queued: bool = False) -> None:
    """A lead with a deal is converted, at its earliest deal's created_at (lead_convert).

    queued=True (one batch of an import on SQLite): the UPDATEs go after the batch's deals on
    the writer thread, so the importing thread goes on parsing; a lead whose deals come in
    several batches is marked by each, the last time with all its deals written."""
    if not queued:
        refresh_statistics()
    first_deal = (
        Deal.objects.filter(lead=OuterRef("pk"))
        .values("lead")
        .annotate(m=Min("created_at"))
        .values("m")
    )
    for part in chunks(list(lead_ids)):
        leads = Lead.objects.filter(pk__in=part)
        values = {
            "status": LeadStatus.CONVERTED,
            "converted_at": Subquery(first_deal[:1]),
            "disqualified_reason": "",
        }
        if queued:
            _queue_update(leads, values)
        else:
            leads.update(**values)


def _queue_update(queryset, values: dict) -> None:
    """queryset.update(**values), compiled by the ORM and run by the writer thread after the
    statements queued before it."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    _writer.execute(sql, list(params))


# --- Stage history ------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def stage_history_replace(
    histories: dict[int, list[tuple[int, dt.datetime]]],
    created_at: dict[int, dt.datetime] | None = None,
) -> None:
    """Replace each deal's history with `[(stage id, entered at), …]` (oldest first; the caller
    has checked that the newest is the deal's current stage), and set the facts it implies:
    those of each entry (StageChange.left_at, reached_before, reach_seconds) and the deal's
    stage facts (services.deals_refresh_stage_facts). The follow-up facts do not depend on it.
    `created_at`: the deals' creation times, when the caller has them at hand (else read)."""
    ids = sorted(histories)
    # The per-entry facts (what services.stage_entries_refresh_facts computes) come with the
    # rows: the entries are in order here, so no window over the history is needed afterwards.
    non_lost_order = {
        pk: (0 if kind == StageKind.LOST else order)
        for pk, order, kind in Stage.objects.values_list("pk", "order", "kind")
    }
    columns = [
        "deal_id",
        "from_stage_id",
        "to_stage_id",
        "at",
        "left_at",
        "reached_before",
        "reach_seconds",
    ]
    replacing = StageChange.objects.exists()  # nothing to delete in an empty table
    for part in chunks(ids, HISTORY_CHUNK):
        if replacing:
            StageChange.objects.filter(deal_id__in=part).delete()
        created = (
            created_at
            if created_at is not None
            else dict(Deal.objects.filter(pk__in=part).values_list("pk", "created_at"))
        )
        rows, in_sql = [], []
        for deal_id in part:
            entries = histories[deal_id]
            previous, reached = None, 0
            born = created[deal_id]
            # Whole-second times give the same whole seconds here as in the database; with
            # fractions SQLite (which reads times to the millisecond) could round the other
            # way, so such a deal's reaches are left to the SQL of stage_entries_refresh_facts.
            exact = born.microsecond == 0 and all(at.microsecond == 0 for _s, at in entries)
            if not exact:
                in_sql.append(deal_id)
            for i, (stage_id, at) in enumerate(entries):
                left_at = entries[i + 1][1] if i + 1 < len(entries) else None
                order = non_lost_order[stage_id]  # 0 for lost: it reaches nothing
                reach = whole_seconds(at - born) if exact and order > reached else None
                rows.append((deal_id, previous, stage_id, at, left_at, reached, reach))
                previous = stage_id
                reached = max(reached, order)
        insert_rows(StageChange, columns, rows)
        if in_sql:
            flush_writes()
            services.stage_entries_refresh_facts(in_sql)
    # In SQL, so the deals' stage facts are by construction those the services keep. (Computed
    # here from the rows at hand instead, they cost more: every UPDATE rewrites the deal's entry
    # in the covering report index, and one statement per deal adds to that.)
    _refresh_facts(ids, services.deals_refresh_stage_facts)


def _most_of(ids: Sequence[int], model) -> bool:
    """Whether `ids` are most rows of `model`'s table: then one statement over every row is far
    cheaper than many over long IN lists, and the rows not in `ids` come out unchanged."""
    return len(ids) > 20_000 and len(ids) * 2 > model.objects.count()


def _refresh_facts(ids: Sequence[int], refresh: Callable) -> None:
    """Run a services.deals_refresh_* function over the deals `ids`."""
    refresh_statistics()
    if _most_of(ids, Deal):
        refresh()
    else:
        for part in chunks(list(ids)):
            refresh(list(part))


# --- Activities ---------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def activities_upsert(*, columns: list[str], new: list[tuple], updates: list[tuple]) -> None:
    """Insert new activities and update existing ones (`updates`: the columns then the pk)."""
    insert_rows(Activity, columns, new)
    update_rows(Activity, columns, updates)


def deals_refresh_follow_ups(deal_ids: Sequence[int], *, touched: Sequence[int] = ()) -> None:
    """follow_up_count and last_follow_up_at from the done activities
    (services.deals_refresh_follow_up_facts). Deals in `touched` got a follow-up in this import: like
    activity_log, that clears "needs attention" and a next follow-up date it has passed."""
    _refresh_facts(sorted(deal_ids), services.deals_refresh_follow_up_facts)
    for part in chunks(sorted(touched)):
        deals = Deal.objects.filter(pk__in=part, last_follow_up_at__isnull=False)
        deals.filter(needs_attention=True).update(needs_attention=False)
        deals.filter(next_follow_up__lte=F("last_follow_up_at")).update(next_follow_up=None)


def leads_refresh_follow_ups(lead_ids: Sequence[int]) -> None:
    """first_contacted_at as services.leads_refresh_facts keeps it; a new lead with one becomes
    contacted (as activity_log)."""
    refresh_statistics()
    ids = sorted(lead_ids)
    parts = [None] if _most_of(ids, Lead) else list(chunks(ids))
    for part in parts:
        services.leads_refresh_facts(part)
    for part in parts:
        leads = Lead.objects.all() if part is None else Lead.objects.filter(pk__in=part)
        leads.filter(status=LeadStatus.NEW, first_contacted_at__isnull=False).update(
            status=LeadStatus.CONTACTED
        )


# --- Spend --------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def spend_upsert(*, new: list[Spend], updates: list[Spend]) -> None:
    Spend.objects.bulk_create(new, batch_size=BATCH)
    Spend.objects.bulk_update(updates, ["amount"], BATCH)
