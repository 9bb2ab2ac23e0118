"""The tallies: the one description of each summary table the database keeps.

A tally is a GROUP BY over one record table: its key columns and its measures, each an SQL
expression over the record (alias `r`). From that description come

- `recount_sql(vendor)`: the statement that fills the emptied table from the records — what an
  import runs after pausing SQLite's triggers (crm.bulk.tallies_recounted);
- `differences(tally)`: the rows where the table and a recount disagree — what the tests assert
  empty after every kind of write, on both databases.

The triggers that keep the tallies between recounts are written out in migrations 0018, 0019,
0021 and 0022 (a migration must not change when this module does); they are held to this
description by those tests, not by a copy of it.

Keys are plain integers, never foreign keys: 0 stands for "none" (a unique key treats NULLs as
distinct) and a deleted user or source must not cascade into the counts. Rows whose count fell
to 0 stay behind after deletes; readers filter `n > 0`, and the comparison skips them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from leakmap.crm.models import WholeSecondsBetween

SUM = "sum"  # the table holds exactly what the recount does
BOUND = "bound"  # the table holds at least the recount's value (deletes do not lower it)


@dataclass(frozen=True)
class Column:
    name: str
    sqlite: str
    postgresql: str | None = None  # None: the same SQL on both
    measure: str = SUM  # for measures: SUM or BOUND

    def sql(self, vendor: str) -> str:
        return self.postgresql if vendor == "postgresql" and self.postgresql else self.sqlite


@dataclass(frozen=True)
class Tally:
    table: str
    records: str  # the record table, read as `r`
    keys: tuple[Column, ...]
    measures: tuple[Column, ...]
    where: str = ""  # which records count
    paused_by: str = ""  # the crm_tallyswitch flag "<paused_by>_paused" that pauses its triggers

    def select_sql(self, vendor: str) -> str:
        """The tally's rows counted from the records, columns in `keys + measures` order."""
        columns = ", ".join(c.sql(vendor) for c in (*self.keys, *self.measures))
        groups = ", ".join(str(i) for i in range(1, len(self.keys) + 1))
        where = f" WHERE {self.where}" if self.where else ""
        return f"SELECT {columns} FROM {self.records} AS r{where} GROUP BY {groups}"

    def recount_sql(self, vendor: str) -> str:
        names = ", ".join(c.name for c in (*self.keys, *self.measures))
        return f"INSERT INTO {self.table} ({names}) {self.select_sql(vendor)}"


def _within_day(vendor: str) -> str:
    seconds = WholeSecondsBetween.sql_text(vendor, "r.first_contacted_at", "r.created_at")
    return f"COALESCE({seconds} < 86400, {'false' if vendor == 'postgresql' else '0'})"


def _owner(column: str = "owner_id") -> Column:
    return Column("owner_key", f"COALESCE(r.{column}, 0)")


LEADS = Tally(
    table="crm_leadtally",
    records="crm_lead",
    keys=(
        _owner(),
        Column("source_key", "COALESCE(r.source_id, 0)"),
        Column("status", "r.status"),
        Column("converted", "r.converted_at IS NOT NULL"),
        # "Contacted within a day" is crm.rules' FIRST_CONTACT_WITHIN in whole seconds.
        Column("contacted_within_day", _within_day("sqlite"), _within_day("postgresql")),
    ),
    measures=(
        Column("n", "count(*)"),
        # The latest converted / first-contacted time of the group: while it is not after the
        # clock, every converted and contacted lead of the group was so by then.
        Column(
            "latest_at",
            "NULLIF(max(max(COALESCE(r.converted_at, ''), COALESCE(r.first_contacted_at, ''))),"
            " '')",
            "max(GREATEST(r.converted_at, r.first_contacted_at))",
            measure=BOUND,
        ),
    ),
    paused_by="leads",
)

DEALS = Tally(
    table="crm_dealtally",
    records="crm_deal",
    keys=(
        _owner(),
        Column("stage_id", "r.stage_id"),
        Column("reached_order", "r.reached_order"),
        Column("lead_source_key", "COALESCE(r.lead_source_id, 0)"),
        Column("has_lead", "r.lead_id IS NOT NULL"),
    ),
    measures=(
        Column("n", "count(*)"),
        Column(
            "amount_cents",
            "sum(CAST(ROUND(r.amount * 100) AS INTEGER))",
            "sum(CAST(ROUND(r.amount * 100) AS bigint))",
        ),
        Column("follow_ups", "sum(r.follow_up_count)"),
        Column("cycle_seconds", "COALESCE(sum(r.cycle_seconds), 0)"),
        Column("cycle_n", "count(r.cycle_seconds)"),
    ),
    paused_by="deals",
)

LOST = Tally(
    table="crm_losttally",
    records="crm_deal",
    keys=(
        _owner(),
        Column("stage_id", "r.stage_id"),
        Column("reached_order", "r.reached_order"),
        Column("lost_reason_key", "COALESCE(r.lost_reason_id, 0)"),
    ),
    measures=(
        Column("n", "count(*)"),
        Column("with_notes", "sum(CASE WHEN r.lost_notes <> '' THEN 1 ELSE 0 END)"),
        Column("with_competitor", "count(r.competitor_id)"),
    ),
    paused_by="deals",
)

# Finished stays per (stage, hundredth of a day) with their seconds: medians and survival of
# the time in each stage without sorting the history.
STAYS = Tally(
    table="crm_staytally",
    records="crm_stagechange",
    keys=(Column("to_stage_id", "r.to_stage_id"), Column("stay_centidays", "r.stay_centidays")),
    measures=(Column("n", "count(*)"), Column("seconds", "sum(r.stay_seconds)")),
    where="r.stay_seconds IS NOT NULL",
    paused_by="history",
)

# Entries that reached a stage after an earlier one, per (order before, stage, hour taken):
# the funnel's step medians. Written as two ranges so SQLite walks its partial index.
REACHES = Tally(
    table="crm_reachtally",
    records="crm_stagechange",
    keys=(
        Column("reached_before", "r.reached_before"),
        Column("to_stage_id", "r.to_stage_id"),
        Column("reach_hours", "r.reach_hours"),
    ),
    measures=(Column("n", "count(*)"),),
    where="(r.reach_seconds > 0 OR r.reach_seconds < 0)",
    paused_by="history",
)

TALLIES = (LEADS, DEALS, LOST, STAYS, REACHES)


def paused_by(kind: str) -> tuple[Tally, ...]:
    """The tallies whose triggers the switch `<kind>_paused` pauses."""
    return tuple(t for t in TALLIES if t.paused_by == kind)


def recount(tallies: tuple[Tally, ...]) -> None:
    """Empty each tally and fill it again from the records, in the caller's transaction."""
    vendor = connection.vendor
    with connection.cursor() as cursor:
        for tally in tallies:
            cursor.execute(f"DELETE FROM {tally.table}")
            cursor.execute(tally.recount_sql(vendor))


def differences(tally: Tally) -> list[tuple[str, tuple, tuple | None, tuple | None]]:
    """Where the table disagrees with a recount from the records: (what, key, table's
    measures, recount's measures) per key. A BOUND measure disagrees only when the table
    holds less than the recount."""
    vendor = connection.vendor
    width = len(tally.keys)
    names = ", ".join(c.name for c in (*tally.keys, *tally.measures))
    with connection.cursor() as cursor:
        # An emptied row (every summed measure 0) is no row; a row with sums but no count is.
        nonzero = " OR ".join(
            f"COALESCE({c.name}, 0) <> 0" for c in tally.measures if c.measure == SUM
        )
        cursor.execute(f"SELECT {names} FROM {tally.table} WHERE {nonzero}")
        kept = {tuple(row[:width]): tuple(row[width:]) for row in cursor.fetchall()}
        cursor.execute(tally.select_sql(vendor))
        counted = {tuple(row[:width]): tuple(row[width:]) for row in cursor.fetchall()}
    found = []
    for key in sorted(kept.keys() | counted.keys(), key=repr):
        have, want = kept.get(key), counted.get(key)
        if have is None or want is None:
            found.append(("missing" if have is None else "extra", key, have, want))
            continue
        for column, h, w in zip(tally.measures, have, want, strict=True):
            if column.measure == BOUND:
                wrong = w is not None and (h is None or _comparable(h) < _comparable(w))
            else:
                wrong = h != w
            if wrong:
                found.append((column.name, key, have, want))
                break
    return found


def _comparable(value):
    """SQLite returns the bound's text as the max() saw it, PostgreSQL a datetime."""
    return value.isoformat(" ") if hasattr(value, "isoformat") else str(value)
