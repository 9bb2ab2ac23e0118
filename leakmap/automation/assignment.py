"""Lead assignment: round-robin within a team, with conditions, a daily cap and a gate.

- An `AssignmentRule` matches a lead by source, industry and region (empty = any); rules are
  tried in sequence order and the first with an eligible rep gets the lead.
- Round-robin: the rep whose last lead from this rule is the oldest (never = first) is next, so
  over any run the counts of eligible reps differ by at most one.
- Daily cap (Odoo-like): leads a rep received in the last 24 hours, over every rule.
- Gate ("no records, no new leads"): a rep with more than N open deals that are overdue for a
  follow-up or miss a field their stage requires is skipped until they catch up.

The plan is computed from one query per rule (reps with their pointer, 24 h count and gate
count annotated) and applied with one UPDATE per rep, so assigning an import of thousands of
leads costs a handful of queries, not a few per lead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from leakmap.accounts.models import Role, User
from leakmap.automation.models import AssignmentRule, LeadAssignment
from leakmap.crm import services as crm_services
from leakmap.crm.models import Activity, Deal, Lead, LeadStatus, Stage, StageKind

CAP_WINDOW = dt.timedelta(hours=24)
_CHUNK = 2000  # ids per `IN (...)`, well under SQLite's bound-parameter limit


def missing_required_fields_q() -> Q:
    """Open deals whose current stage (or an open stage before it) requires a field that is
    empty — the set-based twin of `crm.services.deals._missing_required_fields`."""
    from leakmap.crm.services import REQUIRABLE_FIELDS

    missing = {
        f: (Q(amount__isnull=True) | Q(amount__lte=0))
        if f == "amount"
        else Q(**{f"{f}__isnull": True})
        for f in REQUIRABLE_FIELDS
    }
    stages = list(
        Stage.objects.exclude(kind=StageKind.LOST).values(
            "id", "pipeline_id", "order", "required_fields"
        )
    )
    q = Q(pk__in=[])
    for stage in stages:
        required: set[str] = set()
        for other in stages:
            if other["pipeline_id"] == stage["pipeline_id"] and other["order"] <= stage["order"]:
                required.update(f for f in other["required_fields"] or [] if f in missing)
        if required:
            any_missing = Q(pk__in=[])
            for f in sorted(required):
                any_missing |= missing[f]
            q |= Q(stage_id=stage["id"]) & any_missing
    return q


def open_issue_deals(now: dt.datetime):
    """Open deals that count against the gate: overdue for a follow-up (the next follow-up date
    passed, or an undone activity is past due) or missing a required field."""
    overdue_activity = Activity.objects.filter(
        deal=OuterRef("pk"), done_at__isnull=True, due_at__lt=now
    )
    return Deal.objects.filter(stage__kind=StageKind.OPEN).filter(
        Q(next_follow_up__lt=now) | Exists(overdue_activity) | missing_required_fields_q()
    )


class AssignmentPlan:
    """In-memory round-robin state for one assignment pass, loaded with one query per rule."""

    def __init__(self, now: dt.datetime):
        self.now = now
        self.rules = list(AssignmentRule.objects.filter(is_active=True).order_by("sequence", "id"))
        self._reps: dict[int, list[User]] = {}
        self.pointer: dict[tuple[int, int], tuple[int, int]] = {}
        self.recent: dict[int, int] = {}
        self.issues: dict[int, int] = {}
        self._counter = 0
        self._issue_q = None

    def reps(self, rule: AssignmentRule) -> list[User]:
        if rule.pk not in self._reps:
            qs = User.objects.filter(team_id=rule.team_id, role=Role.REP, is_active=True).annotate(
                last_id=Max("lead_assignments__id", filter=Q(lead_assignments__rule=rule)),
                recent=Count(
                    "lead_assignments",
                    filter=Q(
                        lead_assignments__assigned_at__gt=self.now - CAP_WINDOW,
                        lead_assignments__assigned_at__lte=self.now,
                    ),
                ),
            )
            if rule.gate_max_open_issues is not None:
                # A subquery, not a join: joining deals as well would multiply the counts above.
                issues = (
                    open_issue_deals(self.now)
                    .filter(owner=OuterRef("pk"))
                    .order_by()
                    .values("owner")
                    .annotate(n=Count("pk"))
                    .values("n")
                )
                qs = qs.annotate(
                    issues=Coalesce(Subquery(issues[:1]), Value(0), output_field=IntegerField())
                )
            reps = list(qs.order_by("id"))
            for rep in reps:
                self.pointer[(rule.pk, rep.pk)] = (0, rep.last_id or 0)
                self.recent.setdefault(rep.pk, rep.recent)
                if hasattr(rep, "issues"):
                    self.issues[rep.pk] = rep.issues
            self._reps[rule.pk] = reps
        return self._reps[rule.pk]

    @staticmethod
    def matches(rule: AssignmentRule, source_id, industry_id, region: str) -> bool:
        if rule.source_id is not None and rule.source_id != source_id:
            return False
        if rule.industry_id is not None and rule.industry_id != industry_id:
            return False
        if (
            rule.region.strip()
            and rule.region.strip().casefold() != (region or "").strip().casefold()
        ):
            return False
        return True

    def choose(
        self, *, source_id, industry_id, region: str, exclude: Iterable[int] = ()
    ) -> tuple[AssignmentRule, User] | None:
        excluded = set(exclude)
        for rule in self.rules:
            if not self.matches(rule, source_id, industry_id, region):
                continue
            eligible = [
                rep
                for rep in self.reps(rule)
                if rep.pk not in excluded
                and (rule.daily_cap is None or self.recent[rep.pk] < rule.daily_cap)
                and (
                    rule.gate_max_open_issues is None
                    or self.issues.get(rep.pk, 0) <= rule.gate_max_open_issues
                )
            ]
            if not eligible:
                continue
            rep = min(eligible, key=lambda r: (self.pointer[(rule.pk, r.pk)], r.pk))
            self._counter += 1
            self.pointer[(rule.pk, rep.pk)] = (1, self._counter)
            self.recent[rep.pk] += 1
            return rule, rep
        return None


def assign_lead(
    lead: Lead,
    *,
    exclude: Iterable[int] = (),
    now: dt.datetime | None = None,
    plan: AssignmentPlan | None = None,
) -> User | None:
    """Give `lead` to the next eligible rep (not one in `exclude`, a set of user ids); None when
    no rule matches or every matching rep is capped or gated (the lead keeps its owner).
    A caller assigning many leads one by one (the rules run) passes one `plan` for all."""
    now = now or timezone.now()
    plan = plan or AssignmentPlan(now)
    with transaction.atomic():
        choice = plan.choose(
            source_id=lead.source_id,
            industry_id=lead.industry_id,
            region=lead.region,
            exclude=exclude,
        )
        if choice is None:
            return None
        rule, rep = choice
        crm_services.lead_assign(lead=lead, owner=rep)
        LeadAssignment.objects.create(lead=lead, rep=rep, rule=rule, assigned_at=now)
    return rep


def assign_unowned_leads(lead_ids=None, *, now: dt.datetime | None = None) -> int:
    """Assign every open lead without an owner (or those of `lead_ids`), oldest first.
    Returns how many got an owner; the rest stay unowned, where managers see them."""
    now = now or timezone.now()
    with transaction.atomic():
        leads = (
            Lead.objects.select_for_update()
            .filter(owner__isnull=True)
            .exclude(status__in=[LeadStatus.CONVERTED, LeadStatus.DISQUALIFIED])
        )
        if lead_ids is not None:
            leads = leads.filter(pk__in=list(lead_ids))
        rows = list(
            leads.order_by("created_at", "id").values_list(
                "id", "source_id", "industry_id", "region"
            )
        )
        if not rows:
            return 0
        plan = AssignmentPlan(now)
        by_rep: dict[int, list[int]] = {}
        records: list[LeadAssignment] = []
        for lead_id, source_id, industry_id, region in rows:
            choice = plan.choose(source_id=source_id, industry_id=industry_id, region=region)
            if choice is None:
                continue
            rule, rep = choice
            by_rep.setdefault(rep.pk, []).append(lead_id)
            records.append(LeadAssignment(lead_id=lead_id, rep=rep, rule=rule, assigned_at=now))
        # One UPDATE per rep and chunk, through the bulk twin of crm.services.lead_assign.
        for rep_id, ids in by_rep.items():
            for start in range(0, len(ids), _CHUNK):
                crm_services.leads_assign(lead_ids=ids[start : start + _CHUNK], owner=rep_id)
        # In plan order, so the ids (the round-robin pointer) grow in the order leads were given.
        LeadAssignment.objects.bulk_create(records, batch_size=_CHUNK)
    return len(records)
