"""The rule engine: evaluate every active workflow rule once, as of a given time.

Each rule selects its candidates with one query, which already leaves out the records whose
current occurrence is in the ledger (`RuleFiring`); the only further queries are the writes of
the firings themselves. Exactly-once holds twice over:

- the run takes a database lock (PostgreSQL: a transaction-level advisory lock; SQLite: the
  IMMEDIATE write transaction that every atomic block opens), so concurrent runs queue;
- each firing inserts its ledger row first, and the unique constraint on (rule, record,
  occurrence, step) turns a duplicate into an IntegrityError that skips the firing.

An occurrence is the time that started the episode (the last follow-up, the stage entry, the
next follow-up date, the lead's assignment, the local day of a digest), so a rule fires again
only after its condition cleared (the time moved) and came back.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from leakmap.accounts.models import Role, User
from leakmap.automation.assignment import AssignmentPlan, assign_lead
from leakmap.automation.models import LeadAssignment, Rule, RuleFiring, RuleKey
from leakmap.automation.notifications import (
    absolute_url,
    batched_mail,
    current_outbox,
    deal_url,
    in_language_of,
    lead_url,
)
from leakmap.automation.services import notification_create
from leakmap.crm import rules as crm_rules
from leakmap.crm import services as crm_services
from leakmap.crm.models import ActivityKind, Deal, Lead, LeadStatus, Stage, StageKind

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "leak" in ASCII, so it is recognisable in pg_locks.
ADVISORY_LOCK_KEY = 0x6C65616B
DEFAULT_LEAD_HOURS = 24
DEFAULT_DIGEST_HOUR = 8
DIGEST_ITEMS = 5


@dataclass
class Firing:
    rule: str
    record_type: str
    record_id: int
    step: str
    occurrence_at: dt.datetime
    summary: str
    actions: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    as_of: dt.datetime
    firings: list[Firing] = field(default_factory=list)
    skipped: bool = False
    errors: int = 0


def _lock(wait: bool) -> bool:
    """Serialise runs. PostgreSQL: an advisory lock held until the run's transaction ends.
    SQLite: the atomic block already began IMMEDIATE, holding the database's write lock."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def run_rules(*, as_of: dt.datetime | None = None, wait: bool = True) -> RunResult:
    """Evaluate every active rule once as if the clock read `as_of` (default: now).

    `wait=False` (the background scheduler) gives up at once when another run holds the lock;
    the CLI waits for it, then finds that run's firings in the ledger.
    """
    as_of = as_of or timezone.now()
    if timezone.is_naive(as_of):
        raise ValueError("as_of needs a time zone")
    result = RunResult(as_of=as_of)
    with transaction.atomic():
        if not _lock(wait):
            result.skipped = True
            return result
        run = _Run(as_of, result)
        # Inactive rules too: the digest reads their thresholds to say what "stuck" means.
        run.rules = {rule.key: rule for rule in Rule.objects.order_by("key")}
        with batched_mail():
            for rule in run.rules.values():
                evaluate = EVALUATORS.get(rule.key)
                if rule.is_active and evaluate is not None:
                    evaluate(run, rule)
            run.finish()
    return result


class _Run:
    def __init__(self, as_of: dt.datetime, result: RunResult):
        self.as_of = as_of
        self.result = result
        self._team_managers: dict[int, list[User]] | None = None
        self._plan: AssignmentPlan | None = None
        self.flag_ids: list[int] = []
        self.rules: dict[str, Rule] = {}

    # --- helpers --------------------------------------------------------------------------

    def fired(self, rule: Rule, record_type: str, occurrence, step: str = ""):
        """Exists(ledger row for the outer record and `occurrence`), for the NOT EXISTS that
        keeps already-fired records out of a rule's candidate query."""
        return Exists(
            RuleFiring.objects.filter(
                rule=rule,
                record_type=record_type,
                record_id=OuterRef("pk"),
                occurrence_at=occurrence,
                step=step,
            )
        )

    def managers_of(self, owner: User) -> list[User]:
        """The owner's manager, else the active managers of the owner's team."""
        if owner.manager_id is not None:
            manager = owner.manager
            return [manager] if manager.is_active and manager.pk != owner.pk else []
        if owner.team_id is None:
            return []
        if self._team_managers is None:
            self._team_managers = {}
            for manager in User.objects.filter(
                role=Role.MANAGER, is_active=True, team__isnull=False
            ).order_by("id"):
                self._team_managers.setdefault(manager.team_id, []).append(manager)
        return [m for m in self._team_managers.get(owner.team_id, []) if m.pk != owner.pk]

    @property
    def plan(self) -> AssignmentPlan:
        if self._plan is None:
            self._plan = AssignmentPlan(self.as_of)
        return self._plan

    def fire(
        self,
        rule: Rule,
        *,
        record_type: str,
        record_id: int,
        occurrence_at,
        step: str = "",
        summary: str,
        act,
    ) -> bool:
        """Insert the ledger row, then run the actions, in one savepoint: a duplicate (another
        run got there first) skips the firing and undoes nothing else."""
        firing = Firing(rule.key, record_type, record_id, step, occurrence_at, summary)
        recorded = False
        outbox = current_outbox()
        marks = (len(outbox) if outbox is not None else 0, len(self.flag_ids))
        try:
            with transaction.atomic():
                RuleFiring.objects.create(
                    rule=rule,
                    record_type=record_type,
                    record_id=record_id,
                    occurrence_at=occurrence_at,
                    step=step,
                    fired_at=self.as_of,
                    summary=summary[:300],
                )
                recorded = True
                act(firing.actions)
        except Exception as exc:
            # The savepoint is undone; so are the mails and flags this firing queued.
            if outbox is not None:
                del outbox[marks[0] :]
            del self.flag_ids[marks[1] :]
            if isinstance(exc, IntegrityError) and not recorded:
                log.info("rule %s already fired for %s %s", rule.key, record_type, record_id)
                return False
            # One record whose action fails (a validation, a constraint) must not hold back
            # every other firing of the run: nothing is recorded for it, and the next run
            # tries again.
            log.exception("rule %s failed for %s %s", rule.key, record_type, record_id)
            self.result.errors += 1
            return False
        self.result.firings.append(firing)
        return True

    def notify(self, actions: list[str], rule: Rule, user: User, make, url: str) -> None:
        """`make()` returns (title, body); it runs in the recipient's language."""
        with in_language_of(user):
            title, body = make()
        notification_create(
            recipient=user,
            kind=rule.key,
            title=title,
            body=body,
            url=url,
            email=rule.send_email,
            at=self.as_of,
        )
        actions.append(
            f"notify:{user.username}" + ("+mail" if rule.send_email and user.email else "")
        )

    def notify_people(
        self, actions: list[str], rule: Rule, owner: User, make, url: str, *, flag_deal=None
    ) -> None:
        """What most rules do once they fire: tell the owner and their managers as the rule says,
        and flag the deal when the rule flags."""
        if rule.notify_owner:
            self.notify(actions, rule, owner, make, url)
        if rule.notify_manager:
            for manager in self.managers_of(owner):
                self.notify(actions, rule, manager, make, url)
        if flag_deal is not None and rule.set_flag:
            self.flag_ids.append(flag_deal.pk)
            actions.append("flag")

    def finish(self) -> None:
        # One UPDATE for every deal flagged in this run.
        if self.flag_ids:
            crm_services.deals_flag_attention(deal_ids=self.flag_ids)

    def days_since(self, when: dt.datetime) -> int:
        return (self.as_of - when).days


# --- The rules -------------------------------------------------------------------------------


def _open_deals():
    return Deal.objects.filter(stage__kind=StageKind.OPEN).select_related(
        "owner", "owner__manager", "stage"
    )


def evaluate_no_follow_up(run: _Run, rule: Rule) -> None:
    """1. Silent for X days (crm.rules.is_silent; X is the rule's days, else
    LEAKMAP_NO_FOLLOW_UP_DAYS) → owner (+ flag); silent for X + Y days → the manager too."""
    x = crm_rules.no_follow_up_days(rule.days)
    y = rule.escalate_after_days
    basis = Coalesce("last_follow_up_at", "created_at")
    escalate_after = x + y if y is not None else None
    pending = Q(owner_done=False)
    if escalate_after is not None:
        pending |= crm_rules.silent_q("basis", run.as_of, escalate_after) & Q(escalated=False)
    deals = (
        _open_deals()
        .annotate(basis=basis)
        .filter(crm_rules.silent_q("basis", run.as_of, x))
        .annotate(
            owner_done=run.fired(rule, "deal", OuterRef("basis")),
            escalated=run.fired(rule, "deal", OuterRef("basis"), "escalate"),
        )
        .filter(pending)
        .order_by("id")
    )
    for deal in deals:
        days = run.days_since(deal.basis)
        url = deal_url(deal.pk)

        def make(deal=deal, days=days):
            return (
                _("No follow-up on “%(deal)s” for %(days)d days")
                % {"deal": deal.name, "days": days},
                _(
                    "Deal “%(deal)s” (owner %(owner)s, stage %(stage)s) has had no follow-up for "
                    "%(days)d days. Call, mail or meet the customer and log it."
                )
                % {"deal": deal.name, "owner": deal.owner, "stage": deal.stage.label, "days": days},
            )

        if not deal.owner_done:

            def act(actions, deal=deal, make=make, url=url):
                if rule.notify_owner:
                    run.notify(actions, rule, deal.owner, make, url)
                if rule.set_flag:
                    run.flag_ids.append(deal.pk)
                    actions.append("flag")

            run.fire(
                rule,
                record_type="deal",
                record_id=deal.pk,
                occurrence_at=deal.basis,
                summary=f"{deal.name}: {days}d without follow-up",
                act=act,
            )
        if (
            escalate_after is not None
            and crm_rules.is_silent(deal.basis, run.as_of, escalate_after)
            and not deal.escalated
        ):

            def act_escalate(actions, deal=deal, make=make, url=url):
                if rule.notify_manager:
                    for manager in run.managers_of(deal.owner):
                        run.notify(actions, rule, manager, make, url)

            run.fire(
                rule,
                record_type="deal",
                record_id=deal.pk,
                occurrence_at=deal.basis,
                step="escalate",
                summary=f"{deal.name}: {days}d without follow-up (escalated)",
                act=act_escalate,
            )


def _over_sla_q(as_of: dt.datetime) -> Q:
    """Open deals over their stage's SLA (crm.rules): one OR term per stage with an SLA (a
    handful), so the comparison stays a plain indexed column test on both databases."""
    q = Q(pk__in=[])
    for stage_id, sla in Stage.objects.filter(
        kind=StageKind.OPEN, sla_days__isnull=False
    ).values_list("id", "sla_days"):
        q |= Q(stage_id=stage_id) & crm_rules.over_sla_q("entered", as_of, sla)
    return q


def evaluate_stage_sla(run: _Run, rule: Rule) -> None:
    """2. In a stage longer than the stage's SLA → owner and manager."""
    deals = (
        _open_deals()
        .annotate(entered=Coalesce("stage_entered_at", "created_at"))
        .filter(_over_sla_q(run.as_of))
        .exclude(run.fired(rule, "deal", OuterRef("entered")))
        .order_by("id")
    )
    for deal in deals:
        days = run.days_since(deal.entered)

        def make(deal=deal, days=days):
            return (
                _("“%(deal)s” has been in %(stage)s for %(days)d days")
                % {"deal": deal.name, "stage": deal.stage.label, "days": days},
                _(
                    "Deal “%(deal)s” (owner %(owner)s) has been in stage %(stage)s for %(days)d "
                    "days; the stage's SLA is %(sla)d days. Move it forward or close it."
                )
                % {
                    "deal": deal.name,
                    "owner": deal.owner,
                    "stage": deal.stage.label,
                    "days": days,
                    "sla": deal.stage.sla_days,
                },
            )

        def act(actions, deal=deal, make=make):
            url = deal_url(deal.pk)
            run.notify_people(actions, rule, deal.owner, make, url, flag_deal=deal)

        run.fire(
            rule,
            record_type="deal",
            record_id=deal.pk,
            occurrence_at=deal.entered,
            summary=f"{deal.name}: {days}d in {deal.stage.key} (SLA {deal.stage.sla_days}d)",
            act=act,
        )


def evaluate_lead_not_contacted(run: _Run, rule: Rule) -> None:
    """3. New lead with no first contact H hours after it reached its owner → the owner; and
    optionally hand it to the next rep, whose own H hours start then (a new occurrence)."""
    hours = rule.hours if rule.hours is not None else DEFAULT_LEAD_HOURS
    assigned = LeadAssignment.objects.filter(lead=OuterRef("pk"), assigned_at__lte=run.as_of)
    leads = (
        Lead.objects.filter(
            status=LeadStatus.NEW, first_contacted_at__isnull=True, owner__isnull=False
        )
        .select_related("owner", "owner__manager")
        .annotate(
            clock=Coalesce(
                Subquery(assigned.order_by("-assigned_at", "-id").values("assigned_at")[:1]),
                "created_at",
            )
        )
        .filter(clock__lte=run.as_of - dt.timedelta(hours=hours))
        .exclude(run.fired(rule, "lead", OuterRef("clock")))
        .order_by("id")
    )
    for lead in leads:
        waited = int((run.as_of - lead.clock).total_seconds() // 3600)
        url = lead_url(lead.pk)

        def make(lead=lead, waited=waited):
            return (
                _("Lead “%(lead)s” not contacted for %(hours)d hours")
                % {"lead": lead, "hours": waited},
                _(
                    "Lead “%(lead)s” (owner %(owner)s) is still new and nobody has contacted it "
                    "for %(hours)d hours. Fast first contact is where most leads are won or lost."
                )
                % {"lead": lead, "owner": lead.owner, "hours": waited},
            )

        def act(actions, lead=lead, make=make, url=url):
            run.notify_people(actions, rule, lead.owner, make, url)
            if rule.reassign:
                previous = lead.owner
                new_owner = assign_lead(lead, exclude={previous.pk}, now=run.as_of, plan=run.plan)
                if new_owner is not None:
                    actions.append(f"reassign:{previous.username}->{new_owner.username}")

                    def make_new(lead=lead, previous=previous):
                        return (
                            _("Lead “%(lead)s” reassigned to you") % {"lead": lead},
                            _(
                                "%(previous)s did not contact lead “%(lead)s” in time; it is "
                                "yours now."
                            )
                            % {"lead": lead, "previous": previous},
                        )

                    run.notify(actions, rule, new_owner, make_new, url)

        run.fire(
            rule,
            record_type="lead",
            record_id=lead.pk,
            occurrence_at=lead.clock,
            summary=f"{lead}: not contacted for {waited}h",
            act=act,
        )


def evaluate_overdue_follow_up(run: _Run, rule: Rule) -> None:
    """4. The next follow-up date passed and no follow-up came since → an overdue task."""
    deals = (
        _open_deals()
        .select_related("lead")
        .filter(next_follow_up__isnull=False, next_follow_up__lte=run.as_of)
        .filter(Q(last_follow_up_at__isnull=True) | Q(last_follow_up_at__lt=F("next_follow_up")))
        .exclude(run.fired(rule, "deal", OuterRef("next_follow_up")))
        .order_by("id")
    )
    for deal in deals:
        url = deal_url(deal.pk)

        def make(deal=deal):
            when = timezone.localtime(deal.next_follow_up).strftime("%Y-%m-%d %H:%M")
            return (
                _("Overdue follow-up: “%(deal)s”") % {"deal": deal.name},
                _("The follow-up planned for %(when)s on deal “%(deal)s” has not happened.")
                % {"deal": deal.name, "when": when},
            )

        def act(actions, deal=deal, make=make, url=url):
            if rule.create_task:
                with in_language_of(deal.owner):
                    subject = make()[0]
                crm_services.activity_log(
                    crm_services.ActivityInput(
                        owner=deal.owner,
                        kind=ActivityKind.TASK,
                        deal=deal,
                        subject=subject,
                        due_at=deal.next_follow_up,
                        created_at=run.as_of,
                    )
                )
                actions.append("task")
            run.notify_people(actions, rule, deal.owner, make, url, flag_deal=deal)

        run.fire(
            rule,
            record_type="deal",
            record_id=deal.pk,
            occurrence_at=deal.next_follow_up,
            summary=f"{deal.name}: follow-up due {deal.next_follow_up:%Y-%m-%d %H:%M} UTC missed",
            act=act,
        )


def digest_day_start(as_of: dt.datetime) -> dt.datetime:
    """Local midnight of `as_of`'s local day: the digest's occurrence (once per local day)."""
    local = timezone.localtime(as_of)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def evaluate_manager_digest(run: _Run, rule: Rule) -> None:
    """A daily digest for every active manager of what their team lets slip, once per local day
    from the configured local hour. Nothing to report → nothing sent (and it may still go out
    later that day if something turns up)."""
    from leakmap.crm.selectors import visible_deals, visible_leads

    hour = rule.hours if rule.hours is not None else DEFAULT_DIGEST_HOUR
    if timezone.localtime(run.as_of).hour < hour:
        return
    day = digest_day_start(run.as_of)
    no_follow_up = run.rules.get(RuleKey.NO_FOLLOW_UP)
    lead_rule = run.rules.get(RuleKey.LEAD_NOT_CONTACTED)
    x = crm_rules.no_follow_up_days(no_follow_up.days if no_follow_up else None)
    h = lead_rule.hours if lead_rule and lead_rule.hours is not None else DEFAULT_LEAD_HOURS
    managers = (
        User.objects.filter(role=Role.MANAGER, is_active=True)
        .exclude(run.fired(rule, "user", day, "digest"))
        .order_by("id")
    )
    for manager in managers:
        deals = visible_deals(manager).filter(stage__kind=StageKind.OPEN)
        stuck = (
            deals.annotate(
                entered=Coalesce("stage_entered_at", "created_at"),
                basis=Coalesce("last_follow_up_at", "created_at"),
            )
            .filter(_over_sla_q(run.as_of) | crm_rules.silent_q("basis", run.as_of, x))
            .order_by("basis", "id")
        )
        overdue = (
            deals.filter(next_follow_up__lte=run.as_of)
            .filter(
                Q(last_follow_up_at__isnull=True) | Q(last_follow_up_at__lt=F("next_follow_up"))
            )
            .order_by("next_follow_up", "id")
        )
        uncontacted = (
            visible_leads(manager)
            .filter(
                status=LeadStatus.NEW,
                first_contacted_at__isnull=True,
                created_at__lte=run.as_of - dt.timedelta(hours=h),
            )
            .order_by("created_at", "id")
        )
        counts = (stuck.count(), overdue.count(), uncontacted.count())
        if not any(counts):
            continue
        sections = [
            (counts[0], [(d.name, d.owner, deal_url(d.pk)) for d in stuck[:DIGEST_ITEMS]]),
            (counts[1], [(d.name, d.owner, deal_url(d.pk)) for d in overdue[:DIGEST_ITEMS]]),
            (
                counts[2],
                [(str(lead), lead.owner, lead_url(lead.pk)) for lead in uncontacted[:DIGEST_ITEMS]],
            ),
        ]

        def make(counts=counts, sections=sections):
            headings = [
                ngettext("%(n)d stuck deal", "%(n)d stuck deals", counts[0]) % {"n": counts[0]},
                ngettext("%(n)d overdue follow-up", "%(n)d overdue follow-ups", counts[1])
                % {"n": counts[1]},
                ngettext(
                    "%(n)d lead without first contact",
                    "%(n)d leads without first contact",
                    counts[2],
                )
                % {"n": counts[2]},
            ]
            lines: list[str] = []
            for heading, (n, items) in zip(headings, sections, strict=True):
                if not n:
                    continue
                lines.append(heading)
                for name, owner, url in items:
                    who = owner or _("unassigned")
                    lines.append(f"- {name} ({who}): {absolute_url(url)}")
                if n > len(items):
                    lines.append(_("… and %(n)d more") % {"n": n - len(items)})
                lines.append("")
            title = _("Daily digest: %(summary)s") % {"summary": ", ".join(headings)}
            return title, "\n".join(lines).strip()

        def act(actions, manager=manager, make=make):
            run.notify(actions, rule, manager, make, "/")

        run.fire(
            rule,
            record_type="user",
            record_id=manager.pk,
            occurrence_at=day,
            step="digest",
            summary=f"digest for {manager.username}: {counts[0]} stuck, {counts[1]} overdue, "
            f"{counts[2]} uncontacted",
            act=act,
        )


EVALUATORS = {
    RuleKey.NO_FOLLOW_UP: evaluate_no_follow_up,
    RuleKey.STAGE_SLA: evaluate_stage_sla,
    RuleKey.LEAD_NOT_CONTACTED: evaluate_lead_not_contacted,
    RuleKey.OVERDUE_FOLLOW_UP: evaluate_overdue_follow_up,
    RuleKey.MANAGER_DIGEST: evaluate_manager_digest,
}
