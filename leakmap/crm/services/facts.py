"""The per-deal and per-lead facts, recomputed from the record in SQL, for bulk writes and
stage reorders; the per-change services keep the same facts incrementally."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from leakmap.crm.models import (
    Activity,
    Deal,
    Lead,
    Stage,
    StageChange,
    StageKind,
    WholeSecondsBetween,
)


def _reach_seconds(
    stage: Stage, reached_before: int, at: dt.datetime, created_at: dt.datetime
) -> WholeSecondsBetween | None:
    """StageChange.reach_seconds of an entry: set when it takes the deal to an order it had not
    reached (as stage_entries_refresh_facts computes it)."""
    if stage.kind == StageKind.LOST or stage.order <= reached_before:
        return None
    # Computed by the database, as every other writer of the fact does: SQLite reads times to
    # the millisecond, so Python's exact microseconds could round a second the other way.
    return WholeSecondsBetween(Value(at, DateTimeField()), Value(created_at, DateTimeField()))


def deals_refresh_facts(deal_ids=None) -> int:
    """Recompute every per-deal fact from the stage history and activities, in SQL.

    Used after bulk imports and after a pipeline's stages are reordered; the per-change services
    (deals, activities) keep the same facts incrementally. `deal_ids` may be a list or a
    queryset of ids; None means every deal. Returns the number of deals updated. The two halves
    are separate functions because a bulk write usually moves only one of them: a history import
    leaves follow-ups alone, an activities import leaves the stages alone.
    """
    with transaction.atomic():
        count = deals_refresh_stage_facts(deal_ids)
        deals_refresh_follow_up_facts(deal_ids)
    return count


def _deals(deal_ids):
    return Deal.objects.all() if deal_ids is None else Deal.objects.filter(pk__in=deal_ids)


def deals_refresh_stage_facts(deal_ids=None) -> int:
    """The facts that come from the stage history: reached_order, stage_entered_at and
    lost_at_stage. Returns the number of deals updated.

    A deal with no history row counts as having entered its current stage at created_at, and
    every open stage before it (CONTRACT §4). A lost deal with no history has no stage it was
    lost from on record: it counts as lost at the pipeline's first open stage, so it is not
    credited with stages it never showed it reached.
    """
    deals = _deals(deal_ids)
    history = StageChange.objects.filter(deal=OuterRef("pk"))
    newest = history.order_by("-at", "-id")
    reached = (
        history.exclude(to_stage__kind=StageKind.LOST)
        .values("deal")
        .annotate(m=Max("to_stage__order"))
        .values("m")
    )
    current_stage = Stage.objects.filter(pk=OuterRef("stage_id"))
    first_open = Stage.objects.filter(
        pipeline=OuterRef("pipeline_id"), kind=StageKind.OPEN
    ).order_by("order")
    # Without history: the current stage's order, or for a lost deal the first open stage's.
    fallback_order = Coalesce(
        Subquery(current_stage.exclude(kind=StageKind.LOST).values("order")[:1]),
        Subquery(first_open.values("order")[:1]),
        Value(0),
    )
    with transaction.atomic():
        count = deals.update(
            reached_order=Coalesce(Subquery(reached[:1]), fallback_order),
            stage_entered_at=Coalesce(Subquery(newest.values("at")[:1]), F("created_at")),
        )
        # The stage it was in when it entered lost: the newest change's from_stage.
        deals.filter(stage__kind=StageKind.LOST).update(
            lost_at_stage=Coalesce(
                Subquery(newest.filter(to_stage__kind=StageKind.LOST).values("from_stage")[:1]),
                Subquery(first_open.values("pk")[:1]),
            )
        )
        deals.exclude(stage__kind=StageKind.LOST).exclude(lost_at_stage=None).update(
            lost_at_stage=None
        )
    return count


def deals_refresh_follow_up_facts(deal_ids=None) -> None:
    """follow_up_count and last_follow_up_at: the deal's done activities."""
    follow_ups = (
        Activity.objects.filter(deal=OuterRef("pk"), done_at__isnull=False)
        .values("deal")
        .annotate(n=Count("id"), last=Max("done_at"))
    )
    _deals(deal_ids).update(
        last_follow_up_at=Subquery(follow_ups.values("last")[:1]),
        follow_up_count=Coalesce(Subquery(follow_ups.values("n")[:1]), Value(0)),
    )


def stage_entries_refresh_facts(deal_ids=None) -> None:
    """Recompute the per-entry facts of the deals' history (StageChange.left_at and
    reached_before), in one SQL statement over a window by deal in (at, id) order.

    deal_move keeps them incrementally; this is for writes that replace or append history in
    bulk, and for a reorder of stages. `deal_ids` may be a list or a queryset of ids; None means
    every deal.
    """
    qn = connection.ops.quote_name
    where, params = "", []
    if deal_ids is not None:
        if isinstance(deal_ids, QuerySet):
            sub, params = deal_ids.query.sql_with_params()
            where = f"WHERE h.deal_id IN ({sub})"
        else:
            ids = list(deal_ids)
            if not ids:
                return
            where = f"WHERE h.deal_id IN ({', '.join(['%s'] * len(ids))})"
            params = ids
    sc, st = qn(StageChange._meta.db_table), qn(Stage._meta.db_table)
    dl = qn(Deal._meta.db_table)
    window = f"PARTITION BY h.deal_id ORDER BY h.{qn('at')}, h.id"
    since_created = WholeSecondsBetween.sql_text(connection.vendor, f"h.{qn('at')}", "d.created_at")
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {sc} SET left_at = w.nxt, reached_before = w.rb,
                reach_seconds = CASE WHEN w.kind <> %s AND w.ord > w.rb THEN w.since END
            FROM (
                SELECT h.id AS id, LEAD(h.{qn("at")}) OVER ({window}) AS nxt,
                       COALESCE(MAX(CASE WHEN t.kind <> %s THEN t.{qn("order")} END) OVER (
                           {window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS rb,
                       t.kind AS kind, t.{qn("order")} AS ord, {since_created} AS since
                FROM {sc} h JOIN {st} t ON t.id = h.to_stage_id JOIN {dl} d ON d.id = h.deal_id
                {where}
            ) w
            WHERE {sc}.id = w.id
            """,
            [StageKind.LOST, StageKind.LOST, *params],
        )


def deals_refresh_lead_source(lead_ids=None) -> int:
    """Deal.lead_source from the deals' leads: for the deals of `lead_ids` (any iterable of
    lead ids), or every deal with a lead when None. Returns the deals written."""
    deals = Deal.objects.filter(lead__isnull=False)
    if lead_ids is not None:
        deals = deals.filter(lead_id__in=list(lead_ids))
    return deals.update(
        lead_source_id=Subquery(Lead.objects.filter(pk=OuterRef("lead_id")).values("source_id")[:1])
    )


def leads_refresh_facts(lead_ids=None) -> None:
    """Recompute `first_contacted_at` of leads: the first follow-up on the lead or on one of
    its deals. `lead_ids` may be any iterable of ids; None means every lead.

    `lead = X OR deal.lead = X` is what it means, but no index serves that OR; so it is split:
    activities on the lead itself (indexed), then the rare activities whose deal belongs to
    another lead than the activity names. Imports of a million leads depend on this.
    """
    ids = None if lead_ids is None else list(lead_ids)
    leads = Lead.objects.all() if ids is None else Lead.objects.filter(pk__in=ids)
    on_lead = (
        Activity.objects.filter(lead=OuterRef("pk"), done_at__isnull=False)
        .order_by("done_at")
        .values("done_at")
    )
    # Two statements so that a lead without follow-ups is written only if it had a date: after
    # an import over every lead most have none, and rewriting them all costs seconds.
    done_on_lead = Exists(Activity.objects.filter(lead=OuterRef("pk"), done_at__isnull=False))
    leads.filter(~done_on_lead).exclude(first_contacted_at=None).update(first_contacted_at=None)
    leads.filter(done_on_lead).update(first_contacted_at=Subquery(on_lead[:1]))
    via_deal = Activity.objects.filter(done_at__isnull=False, deal__lead__isnull=False).exclude(
        lead_id=F("deal__lead_id")
    )
    if ids is not None:
        via_deal = via_deal.filter(deal__lead_id__in=ids)
    for lead_id, first in (
        via_deal.order_by()
        .values("deal__lead_id")
        .annotate(m=Min("done_at"))
        .values_list("deal__lead_id", "m")
    ):
        Lead.objects.filter(pk=lead_id).filter(
            Q(first_contacted_at__isnull=True) | Q(first_contacted_at__gt=first)
        ).update(first_contacted_at=first)
