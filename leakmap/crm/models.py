"""The funnel's record: leads, deals, the stages they pass through, follow-ups and spend.

Models hold data and tiny helpers only; every write goes through `leakmap.crm.services`, which
keeps the invariants and the per-deal facts (the `reached_order`, `lost_at_stage`, … columns on
Deal) that analytics reads.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import translation
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 14, "decimal_places": 2}

# Stays are bucketed in hundredths of a day (864 s) for the stage-time survival estimate.
SECONDS_PER_CENTIDAY = 864
SECONDS_PER_HOUR = 3600


def whole_seconds(delta) -> int:
    """A timedelta in whole seconds, half a second rounded away from zero: what
    WholeSecondsBetween computes in SQL, for values the services write from Python."""
    micro = abs(delta) // dt.timedelta(microseconds=1)
    seconds = (micro + 500_000) // 1_000_000
    return seconds if delta >= dt.timedelta(0) else -seconds


class WholeSecondsBetween(models.Func):
    """(end − start) in whole seconds, rounded, the same on SQLite and PostgreSQL (null when
    either is null). Deterministic, so a generated column may use it."""

    arity = 2
    output_field = models.BigIntegerField()
    TEMPLATES = {
        "sqlite": (
            "CAST(ROUND((julianday(%(expressions)s)) * 86400) AS INTEGER)",
            ") - julianday(",
        ),
        "postgresql": ("CAST(ROUND(EXTRACT(EPOCH FROM (%(expressions)s))) AS bigint)", " - "),
    }

    def as_sqlite(self, compiler, connection, **extra):
        template, joiner = self.TEMPLATES["sqlite"]
        return self.as_sql(compiler, connection, template=template, arg_joiner=joiner, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template, joiner = self.TEMPLATES["postgresql"]
        return self.as_sql(compiler, connection, template=template, arg_joiner=joiner, **extra)

    @classmethod
    def sql_text(cls, vendor: str, end: str, start: str) -> str:
        """The same SQL over two column expressions of ours, for hand-written statements."""
        template, joiner = cls.TEMPLATES[vendor]
        return template % {"expressions": f"{end}{joiner}{start}"}


class NamedModel(models.Model):
    """A small lookup list (sources, industries, competitors) matched by name."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Source(NamedModel):
    class Meta(NamedModel.Meta):
        verbose_name = _("lead source")
        verbose_name_plural = _("lead sources")


class Industry(NamedModel):
    class Meta(NamedModel.Meta):
        verbose_name = _("industry")
        verbose_name_plural = _("industries")


class Competitor(NamedModel):
    class Meta(NamedModel.Meta):
        verbose_name = _("competitor")
        verbose_name_plural = _("competitors")


class LostReason(NamedModel):
    requires_competitor = models.BooleanField(
        _("requires a competitor"),
        default=False,
        help_text=_("Closing lost with this reason also requires naming the competitor."),
    )

    class Meta(NamedModel.Meta):
        verbose_name = _("lost reason")
        verbose_name_plural = _("lost reasons")


class Pipeline(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    is_default = models.BooleanField(_("default"), default=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")

    def __str__(self) -> str:
        return self.name


class StageKind(models.TextChoices):
    OPEN = "open", _("Open")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")


class Stage(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    key = models.SlugField(_("key"), max_length=50)
    label_zh = models.CharField(_("label (zh-hans)"), max_length=100)
    label_en = models.CharField(_("label (en)"), max_length=100)
    order = models.PositiveSmallIntegerField(_("order"))
    probability = models.PositiveSmallIntegerField(
        _("win probability %"), validators=[MaxValueValidator(100)]
    )
    kind = models.CharField(
        _("kind"), max_length=4, choices=StageKind.choices, default=StageKind.OPEN
    )
    sla_days = models.PositiveSmallIntegerField(_("SLA days"), null=True, blank=True)
    # What must be true for a deal to enter this stage, shown wherever reps pick a stage so that
    # every rep means the same thing by it.
    entry_criteria_zh = models.TextField(_("entry criteria (zh-hans)"), blank=True)
    entry_criteria_en = models.TextField(_("entry criteria (en)"), blank=True)
    required_fields = models.JSONField(
        _("required fields"),
        default=list,
        blank=True,
        help_text=_("Deal fields that must be filled before a deal may enter this stage."),
    )

    class Meta:
        ordering = ["pipeline", "order"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "key"], name="stage_key_unique"),
        ]
        verbose_name = _("stage")
        verbose_name_plural = _("stages")

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        lang = translation.get_language() or settings.LANGUAGE_CODE
        return self.label_en if lang.startswith("en") else self.label_zh

    @property
    def entry_criteria(self) -> str:
        lang = translation.get_language() or settings.LANGUAGE_CODE
        return self.entry_criteria_en if lang.startswith("en") else self.entry_criteria_zh

    @property
    def is_open(self) -> bool:
        return self.kind == StageKind.OPEN

    @property
    def is_closed(self) -> bool:
        return self.kind != StageKind.OPEN


class Account(models.Model):
    name = models.CharField(_("name"), max_length=200)
    industry = models.ForeignKey(Industry, null=True, blank=True, on_delete=models.SET_NULL)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="accounts",
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name"])]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    title = models.CharField(_("title"), max_length=100, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
    )
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["name"]
        # The contact list's order: its first page of 300k contacts without sorting them all.
        indexes = [
            models.Index(fields=["name", "id"], name="contact_name_order"),
            # The search box looks an e-mail (ignoring case) or a phone number up.
            models.Index(Lower("email"), name="contact_email_lower"),
            models.Index(fields=["phone"], name="contact_phone"),
        ]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.name


class LeadStatus(models.TextChoices):
    NEW = "new", _("New")
    CONTACTED = "contacted", _("Contacted")
    QUALIFIED = "qualified", _("Qualified")
    CONVERTED = "converted", _("Converted")
    DISQUALIFIED = "disqualified", _("Disqualified")


class Lead(models.Model):
    external_id = models.CharField(
        _("external id"), max_length=100, unique=True, null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=200)
    company = models.CharField(_("company"), max_length=200, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    source = models.ForeignKey(
        Source,
        verbose_name=_("source"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="leads",
        db_index=False,  # (source, created_at) serves its lookups
    )
    industry = models.ForeignKey(
        Industry, verbose_name=_("industry"), null=True, blank=True, on_delete=models.PROTECT
    )
    title = models.CharField(_("title"), max_length=100, blank=True)
    budget = models.DecimalField(_("budget"), null=True, blank=True, **MONEY)
    product = models.CharField(_("product"), max_length=200, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="leads",
        db_index=False,  # lead_owner_cover starts with it
    )
    status = models.CharField(
        _("status"), max_length=12, choices=LeadStatus.choices, default=LeadStatus.NEW
    )
    created_at = models.DateTimeField(_("created at"))
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    disqualified_reason = models.CharField(_("disqualified reason"), max_length=200, blank=True)
    # Fact kept by services: the first follow-up (done activity) on this lead or its deals.
    first_contacted_at = models.DateTimeField(_("first contacted at"), null=True, blank=True)
    # Where a web-form lead came from.
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    referrer = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"]),
            # A rep's leads by date, and the per-rep lead counts of the diagnosis read only this
            # index (no row lookups over a million leads).
            models.Index(
                fields=[
                    "owner",
                    "created_at",
                    "source",
                    "status",
                    "converted_at",
                    "first_contacted_at",
                ],
                name="lead_owner_cover",
            ),
            # A source's leads by date; with status, the diagnosis' disqualified leads per
            # source read only this index.
            models.Index(fields=["source", "created_at", "status"], name="lead_source_cover"),
            # The search box and the API's e-mail filter look an address up ignoring case.
            models.Index(Lower("email"), name="lead_email_lower"),
            models.Index(fields=["phone"]),
        ]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")

    def __str__(self) -> str:
        return f"{self.name} ({self.company})" if self.company else self.name


class TallySwitch(models.Model):
    """One row: while a flag is set, SQLite's tally triggers stand aside (bulk.tallies_recounted
    sets it inside an import's transaction and counts the tally anew before clearing it). No
    row, or any value but 1, means the triggers count — a missing row cannot stop them."""

    leads_paused = models.BooleanField(default=False)
    deals_paused = models.BooleanField(default=False)
    history_paused = models.BooleanField(default=False)  # StayTally and ReachTally

    def __str__(self) -> str:
        return (
            f"leads paused: {self.leads_paused}, deals paused: {self.deals_paused},"
            f" history paused: {self.history_paused}"
        )


class LeadTally(models.Model):
    """How many leads there are per (owner, source, status, converted, first contacted within a
    day of creation). Database triggers on crm_lead keep it (migration 0018), so every write —
    the services, the bulk import, a cascade, plain SQL — keeps it too; the whole company's
    per-rep and per-source lead counts come from its few thousand rows instead of a scan of
    every lead (the diagnosis of a million leads read them three times over).

    `latest_at` is the latest converted_at / first_contacted_at any lead of the group has had:
    a bound that a delete or an update does not lower. While it is not after the clock, the
    group's converted and contacted leads all were so by then, which is what the reports count.
    """

    # Plain integers, not foreign keys: 0 stands for "none" (a unique key treats NULLs as
    # distinct), and a deleted user or source must not cascade into the counts (the trigger
    # moves their leads instead).
    owner_key = models.BigIntegerField()
    source_key = models.BigIntegerField()
    status = models.CharField(max_length=12)
    converted = models.BooleanField()
    contacted_within_day = models.BooleanField()
    n = models.BigIntegerField()
    latest_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_key", "source_key", "status", "converted", "contacted_within_day"],
                name="lead_tally_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner_key}/{self.source_key}/{self.status}: {self.n}"


class Deal(models.Model):
    external_id = models.CharField(
        _("external id"), max_length=100, unique=True, null=True, blank=True
    )
    lead = models.ForeignKey(
        Lead,
        verbose_name=_("lead"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
        db_index=False,  # deal_lead_cover starts with it
    )
    name = models.CharField(_("name"), max_length=200)
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
    )
    contact = models.ForeignKey(
        Contact,
        verbose_name=_("contact"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
    )
    amount = models.DecimalField(
        _("amount"), default=Decimal("0.00"), validators=[MinValueValidator(0)], **MONEY
    )
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="deals")
    stage = models.ForeignKey(
        Stage,
        verbose_name=_("stage"),
        on_delete=models.PROTECT,
        related_name="deals",
        db_index=False,  # (stage, stage_entered_at) serves its lookups
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.PROTECT,
        related_name="deals",
        db_index=False,  # (owner, created_at) serves its lookups
    )
    source = models.ForeignKey(
        Source,
        verbose_name=_("source"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deals",
        db_index=False,  # (source, created_at) serves its lookups
    )
    industry = models.ForeignKey(
        Industry, verbose_name=_("industry"), null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(_("created at"))
    expected_close_date = models.DateField(_("expected close date"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    lost_reason = models.ForeignKey(
        LostReason, verbose_name=_("lost reason"), null=True, blank=True, on_delete=models.PROTECT
    )
    competitor = models.ForeignKey(
        Competitor, verbose_name=_("competitor"), null=True, blank=True, on_delete=models.PROTECT
    )
    lost_notes = models.TextField(_("lost notes"), blank=True)
    next_follow_up = models.DateTimeField(_("next follow-up"), null=True, blank=True)
    needs_attention = models.BooleanField(_("needs attention"), default=False)

    # --- Per-deal facts, kept by services in the same transaction as the change that moves them.
    # Highest `Stage.order` over the non-lost stages in the history (won counts: its order is
    # above every open stage), so "reached stage S" is `reached_order >= S.order`.
    reached_order = models.PositiveSmallIntegerField(default=0)
    # The stage the deal was in when it entered `lost` (null unless lost).
    lost_at_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stage_entered_at = models.DateTimeField(null=True, blank=True)
    last_follow_up_at = models.DateTimeField(null=True, blank=True)
    follow_up_count = models.PositiveIntegerField(default=0)
    # The source of the deal's lead (null without a lead): the sources report counts a deal
    # where its lead came from, and without this it joined every deal to its lead.
    lead_source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        db_index=False,  # deal_lead_source_cover starts with it
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Creation to close in whole seconds, computed by the database (null while open). With the
    # index below, the won deals' median days to close (the funnel's won step) is an index walk
    # to the middle instead of a sort of every won deal.
    cycle_seconds = models.GeneratedField(
        expression=WholeSecondsBetween("closed_at", "created_at"),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"]),
            models.Index(fields=["owner", "created_at"]),
            models.Index(fields=["source", "created_at"]),
            # The board's columns (in the order cards show) and the stuck report: every column
            # the report returns, so it reads the open stages' entries alone, without a lookup
            # of each deal's row. With the attention flag the Today page's "needs attention"
            # lists find their first deals in the index, and with the expected close date the
            # forecast's months are counted from it.
            models.Index(
                fields=[
                    "stage",
                    "stage_entered_at",
                    "created_at",
                    "last_follow_up_at",
                    "owner",
                    "amount",
                    "name",
                    "needs_attention",
                    "expected_close_date",
                ],
                name="deal_stage_cover",
            ),
            # Deals per (reached order, stage) in order. Its reader was the funnel of the whole
            # company, which now adds up the deal tally (DealTally) instead; kept until the
            # plans of the filtered reports are checked without it.
            models.Index(fields=["reached_order", "stage", "amount"], name="deal_reach_cover"),
            # The sources report's deals of the whole company, grouped by their lead's source.
            models.Index(
                fields=["lead_source", "stage", "amount", "lead"], name="deal_lead_source_cover"
            ),
            # Won deals in order of their cycle: the funnel's won step and the cycle report's
            # overall median and p90 walk it to the ranks instead of sorting.
            models.Index(
                fields=["stage", "cycle_seconds"],
                name="deal_cycle_sorted",
                condition=models.Q(cycle_seconds__isnull=False),
            ),
            # The same per owner: the cycle report's per-rep medians number each rep's won
            # deals in this order (a window over the index) instead of sorting them.
            models.Index(
                fields=["stage", "owner", "cycle_seconds"],
                name="deal_cycle_by_owner",
                condition=models.Q(cycle_seconds__isnull=False),
            ),
            models.Index(fields=["expected_close_date"]),
            # Deals closed in a window (the weekly review, with those created in it: an OR
            # of two index ranges instead of a scan of every deal).
            models.Index(fields=["closed_at"]),
            # Every column the reports (and the board's column totals) read, so their scans over all deals read this narrow
            # index instead of the wide rows (3x faster at 300k deals on SQLite, measured in
            # benchmarks/RESULTS.md); owner first for the per-rep reports and a rep's own view.
            models.Index(
                fields=[
                    "owner",
                    "stage",
                    # (owner, stage, reached order) first: the owners report of the whole
                    # company counts deals per such group in this order, without a sort.
                    "reached_order",
                    "amount",
                    "follow_up_count",
                    "cycle_seconds",
                    "created_at",
                    "closed_at",
                    "stage_entered_at",
                    "last_follow_up_at",
                    "lost_at_stage",
                    "source",
                    "lead",
                    "lost_reason",
                    "competitor",
                    "industry",
                    "expected_close_date",
                    "pipeline",
                ],
                name="deal_report_cover",
            ),
            # The sources report counts deals by their lead's source: probing deals by lead
            # reads this index alone (no deal row lookups).
            models.Index(fields=["lead", "stage", "amount"], name="deal_lead_cover"),
            # The lost-reasons report groups the lost deals by reason, competitor, industry and
            # the stage they were lost at: in this order, right after the stage, the groups come
            # out of the index already sorted, with every scope filter's column at hand.
            models.Index(
                fields=[
                    "stage",
                    "lost_reason",
                    "competitor",
                    "industry",
                    "lost_at_stage",
                    "amount",
                    "owner",
                    "created_at",
                    "source",
                ],
                name="deal_lost_cover",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="deal_amount_not_negative"
            ),
        ]
        verbose_name = _("deal")
        verbose_name_plural = _("deals")

    def __str__(self) -> str:
        return self.name


# The entries of the stage_reach_sorted index, and the condition a query repeats to read it.
NONZERO_REACH = models.Q(reach_seconds__gt=0) | models.Q(reach_seconds__lt=0)


class DealTally(models.Model):
    """Deals per (owner, stage, reached order, lead's source, has a lead), with their amounts
    (in cents, so sums stay exact), follow-ups and whole seconds to close. Triggers on
    crm_deal keep it (migration 0019), as LeadTally's keep the leads': the owners report and
    the sources report's deals of the whole company read a few thousand rows of it instead
    of aggregating every deal."""

    owner_key = models.BigIntegerField()  # 0: none
    stage_id = models.BigIntegerField()
    reached_order = models.IntegerField()
    lead_source_key = models.BigIntegerField()  # 0: none
    has_lead = models.BooleanField()
    n = models.BigIntegerField()
    amount_cents = models.BigIntegerField()
    follow_ups = models.BigIntegerField()
    cycle_seconds = models.BigIntegerField()  # summed over the deals that have one
    cycle_n = models.BigIntegerField()  # how many have one

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_key", "stage_id", "reached_order", "lead_source_key", "has_lead"],
                name="deal_tally_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner_key}/{self.stage_id}/{self.reached_order}: {self.n}"


class LostTally(models.Model):
    """Deals per (owner, stage, reached order, lost reason), with how many carry lost notes
    and how many a competitor. Triggers on crm_deal keep it (migration 0022), as DealTally's;
    the diagnosis reads the deals lost after negotiation of the whole company from it (per rep
    and reason) instead of reading each such deal's row. Every deal is counted, the open and
    won ones under reason 0, so the tally does not depend on which stages are of kind lost."""

    owner_key = models.BigIntegerField()  # 0: none
    stage_id = models.BigIntegerField()
    reached_order = models.IntegerField()
    lost_reason_key = models.BigIntegerField()  # 0: none
    n = models.BigIntegerField()
    with_notes = models.BigIntegerField()  # lost_notes not empty
    with_competitor = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_key", "stage_id", "reached_order", "lost_reason_key"],
                name="lost_tally_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner_key}/{self.stage_id}/{self.reached_order}/{self.lost_reason_key}"


class StageChange(models.Model):
    """One entry of a deal into a stage. The newest entry is always the deal's current stage."""

    # Single-column indexes on these two would repeat the composite ones below.
    deal = models.ForeignKey(
        Deal, on_delete=models.CASCADE, related_name="stage_changes", db_index=False
    )
    from_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="+", db_index=False)
    at = models.DateTimeField(_("at"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Per-entry facts, kept by the services with the history (like the per-deal facts on Deal),
    # so stage-time and the funnel's days-to-reach need no window over the whole history.
    # left_at: the deal's next entry's `at` (entries in (at, id) order); null while this entry
    # is the deal's newest, i.e. the deal is still in the stage.
    left_at = models.DateTimeField(_("left at"), null=True, blank=True, editable=False)
    # reached_before: the highest non-lost stage order among the deal's earlier entries (0 for
    # its first), so this entry reaches every open stage in (reached_before, to_stage.order].
    reached_before = models.PositiveSmallIntegerField(default=0, editable=False)
    # The length of a finished stay, computed by the database from at and left_at (so no write
    # path can forget it), and its hundredth-of-a-day bucket. With the index below, stage-time's
    # counts, sums, medians and survival curve over the whole company read pre-sorted stays
    # instead of sorting a million of them per report.
    stay_seconds = models.GeneratedField(
        expression=WholeSecondsBetween("left_at", "at"),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
    )
    stay_centidays = models.GeneratedField(
        expression=WholeSecondsBetween("left_at", "at") / SECONDS_PER_CENTIDAY,
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
    )
    # reach_seconds: when this entry takes the deal to a stage order it had not reached (a
    # non-lost stage above reached_before, so it reaches the open stages in between too), the
    # whole seconds from the deal's creation to it; null for every other entry. The services
    # keep it with reached_before (it depends on the deal's created_at, which a generated
    # column cannot read). With its hour bucket and the index below, the funnel's "median days
    # to reach each step" over the whole company reads pre-sorted values instead of sorting.
    reach_seconds = models.BigIntegerField(null=True, blank=True, editable=False)
    reach_hours = models.GeneratedField(
        expression=models.F("reach_seconds") / SECONDS_PER_HOUR,
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
    )

    class Meta:
        ordering = ["deal", "at", "id"]
        indexes = [
            # A deal's entries in order, with what a report reads of the one whose stay covers
            # a past moment (analytics.base.deal_states): an --as-of report then joins each deal
            # to that entry from the index alone, without reading the history's rows.
            models.Index(
                fields=["deal", "at", "left_at", "to_stage", "reached_before", "from_stage"],
                name="stage_stay_at_cover",
            ),
            models.Index(fields=["to_stage", "at"]),
            models.Index(
                fields=["to_stage", "stay_centidays", "stay_seconds"],
                name="stage_stay_sorted",
                condition=models.Q(stay_seconds__isnull=False),
            ),
            models.Index(
                fields=["reached_before", "to_stage", "reach_hours", "reach_seconds"],
                name="stage_reach_sorted",
                # Not the zeros (a deal created in a stage reaches it at once: a third of the
                # history); the funnel knows how many there are from its counts.
                condition=NONZERO_REACH,
            ),
        ]
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")

    def __str__(self) -> str:
        return (
            f"{self.deal_id}: {self.from_stage_id} → {self.to_stage_id} @ {self.at:%Y-%m-%d %H:%M}"
        )


class StayTally(models.Model):
    """The finished stays of the stage history per (stage, hundredth of a day): how many, and
    their whole seconds summed (StageChange.stay_seconds and stay_centidays, over the entries
    that have one). Triggers on crm_stagechange keep it (migration 0021), as LeadTally's keep
    the leads': stage-time's whole company reads its few ten thousand rows instead of a grouped
    read of a million entries of the stage_stay_sorted index. A group whose stays all went is
    left with n = 0."""

    to_stage_id = models.BigIntegerField()
    stay_centidays = models.BigIntegerField()
    n = models.BigIntegerField()
    seconds = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["to_stage_id", "stay_centidays"], name="stay_tally_key")
        ]

    def __str__(self) -> str:
        return f"{self.to_stage_id}/{self.stay_centidays}: {self.n}"


class ReachTally(models.Model):
    """The stage history's reaches per (order before, stage, hour): how many entries match
    NONZERO_REACH there (StageChange.reached_before, to_stage_id, reach_hours). Kept by the
    triggers of StayTally; the funnel's whole company reads it instead of a grouped read of
    the stage_reach_sorted index. A group whose reaches all went is left with n = 0."""

    reached_before = models.IntegerField()
    to_stage_id = models.BigIntegerField()
    reach_hours = models.BigIntegerField()
    n = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reached_before", "to_stage_id", "reach_hours"], name="reach_tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reached_before}/{self.to_stage_id}/{self.reach_hours}: {self.n}"


class ActivityKind(models.TextChoices):
    CALL = "call", _("Call")
    EMAIL = "email", _("E-mail")
    MEETING = "meeting", _("Meeting")
    NOTE = "note", _("Note")
    TASK = "task", _("Task")


class Activity(models.Model):
    """A call, e-mail, meeting, note or task. One with `done_at` is a follow-up."""

    external_id = models.CharField(
        _("external id"), max_length=100, unique=True, null=True, blank=True
    )
    kind = models.CharField(_("kind"), max_length=8, choices=ActivityKind.choices)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.PROTECT,
        related_name="activities",
        db_index=False,  # (owner, due_at) serves its lookups
    )
    # (deal, done_at) and (lead, done_at) serve these: no single-column copies.
    deal = models.ForeignKey(
        Deal,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    lead = models.ForeignKey(
        Lead,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="activities",
        db_index=False,
    )
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["deal", "done_at"]),
            models.Index(fields=["lead", "done_at"]),
            models.Index(fields=["owner", "due_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(deal__isnull=False) | models.Q(lead__isnull=False),
                name="activity_has_deal_or_lead",
            ),
        ]
        verbose_name = _("activity")
        verbose_name_plural = _("activities")

    def __str__(self) -> str:
        return self.subject or self.get_kind_display()


class Spend(models.Model):
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="spend")
    month = models.DateField(_("month"), help_text=_("First day of the month."))
    amount = models.DecimalField(_("amount"), validators=[MinValueValidator(0)], **MONEY)

    class Meta:
        ordering = ["month", "source"]
        constraints = [
            models.UniqueConstraint(fields=["source", "month"], name="spend_source_month_unique"),
        ]
        verbose_name = _("channel spend")
        verbose_name_plural = _("channel spend")

    def __str__(self) -> str:
        return f"{self.source} {self.month:%Y-%m}"
