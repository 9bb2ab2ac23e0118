"""Import deals (CONTRACT §2) with the closing and stage rules of the services, their
accounts and contacts by name, and the facts of a deal without history."""

from __future__ import annotations

from decimal import Decimal
from operator import itemgetter

from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.crm.models import Deal, Lead, StageKind
from leakmap.exchange.importers.base import Importer, Rec, Row, Stages, _existing

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
                lead = self.referenced(leads, r["lead"], row, "lead_external_id")
                if lead is None:
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
