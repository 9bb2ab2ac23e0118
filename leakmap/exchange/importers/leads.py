"""Import leads (CONTRACT §2); new leads without an owner go through the lead intake."""

from __future__ import annotations

from operator import itemgetter

from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.crm.models import Lead, LeadStatus
from leakmap.crm.services import lead_intake_assign
from leakmap.exchange.importers.base import BATCH, Importer, Rec, Row, _existing, choice_map

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
