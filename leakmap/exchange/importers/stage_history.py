"""Import the stage history of deals (CONTRACT §2): each deal's entries replace its history."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext as _

from leakmap.crm import bulk
from leakmap.crm.models import Deal

# TALLY_RECOUNT_FROM is read as base.TALLY_RECOUNT_FROM, at the call: tests lower it.
from leakmap.exchange.importers import base
from leakmap.exchange.importers.base import Importer, Row, Stages, _existing


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
                    self.referenced(deals, ext, e[1], "deal_external_id")
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
                deals=len(histories) > base.TALLY_RECOUNT_FROM,
                history=entries > base.TALLY_RECOUNT_FROM,
            ):
                bulk.stage_history_replace(histories, created)

    def summary(self) -> dict[str, int]:
        return {"rows": self.rows, "deals": self.updated}
