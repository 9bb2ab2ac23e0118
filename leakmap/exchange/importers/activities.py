"""Import activities (CONTRACT §2) and refresh the follow-up facts of their deals and leads."""

from __future__ import annotations

from operator import itemgetter

from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.crm.models import Activity, ActivityKind, Deal, Lead

# TALLY_RECOUNT_FROM is read as base.TALLY_RECOUNT_FROM, at the call: tests lower it.
from leakmap.exchange.importers import base
from leakmap.exchange.importers.base import (
    BATCH,
    Importer,
    Rec,
    References,
    Row,
    _existing,
    choice_map,
)

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
                deal = self.referenced(deals, r["deal"], row, "deal_external_id")
                if deal is None:
                    continue
            if r["lead"]:
                lead = self.referenced(leads, r["lead"], row, "lead_external_id")
                if lead is None:
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
                deals=len(self.deal_ids) > base.TALLY_RECOUNT_FROM,
                leads=len(self.lead_ids) > base.TALLY_RECOUNT_FROM,
            ):
                bulk.deals_refresh_follow_ups(
                    sorted(self.deal_ids), touched=sorted(self.touched_deals)
                )
                bulk.leads_refresh_follow_ups(sorted(self.lead_ids))
