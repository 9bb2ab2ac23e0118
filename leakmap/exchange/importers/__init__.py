"""Validating importers, one per kind (CONTRACT §2).

Each importer reads its file in batches: every cell is parsed and every rule checked, references
are resolved with one query per batch, and — as long as no row so far was bad — the batch is
written through `leakmap.crm.bulk`. The command runs the whole import in one transaction and
rolls it back when any row was bad (or on --dry-run), so one bad row means nothing is written
while every bad row is still reported, in a single pass over a file of a million rows.

`base` holds what every importer shares; each kind has a module of its own.
"""

from __future__ import annotations

from leakmap.exchange.importers.activities import ActivitiesImporter
from leakmap.exchange.importers.base import Importer, References, email_ok, row_maker
from leakmap.exchange.importers.deals import DealsImporter
from leakmap.exchange.importers.leads import LeadsImporter
from leakmap.exchange.importers.spend import SpendImporter
from leakmap.exchange.importers.stage_history import StageHistoryImporter
from leakmap.exchange.importers.users import UsersImporter

IMPORTERS: dict[str, type[Importer]] = {
    "users": UsersImporter,
    "leads": LeadsImporter,
    "deals": DealsImporter,
    "stage-history": StageHistoryImporter,
    "activities": ActivitiesImporter,
    "spend": SpendImporter,
}

__all__ = [
    "IMPORTERS",
    "ActivitiesImporter",
    "DealsImporter",
    "Importer",
    "References",
    "LeadsImporter",
    "SpendImporter",
    "StageHistoryImporter",
    "UsersImporter",
    "email_ok",
    "row_maker",
]
