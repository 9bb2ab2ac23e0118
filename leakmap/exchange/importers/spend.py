"""Import marketing spend per source and month (CONTRACT §2)."""

from __future__ import annotations

import datetime as dt
import re

from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.crm.models import Spend
from leakmap.exchange.importers.base import Importer, Row
from leakmap.exchange.limits import plan_problem

MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})(?:-01)?$")


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
