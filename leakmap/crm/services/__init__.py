"""Every write to the funnel's record goes through these functions.

They validate, then write inside one transaction, so that the invariants hold whatever the entry
point (web, API, CLI, import, rules):

- every stage change writes a StageChange (who, when, from, to), and the newest one is the
  deal's current stage;
- `won`/`lost` set `closed_at`; reopening clears it;
- closing lost needs a lost reason, and a competitor when the reason says so;
- a stage's required fields must be filled to enter it;
- the per-deal facts that analytics reads (`reached_order`, `lost_at_stage`, `stage_entered_at`,
  `last_follow_up_at`, `follow_up_count`) and the per-entry facts of the history
  (`StageChange.left_at`, `reached_before`) move in the same transaction as the change.

Errors are `django.core.exceptions.ValidationError` keyed by the field at fault, so forms, the
API (4xx) and the CLI (exit 2) can all name it.

One module per record: `leads`, `deals`, `activities`, `accounts` (with contacts), `pipeline`
(stages, lookup lists, spend); `facts` recomputes the derived facts in bulk; `common` holds what
several share. Every public name is re-exported here, so callers write `services.deal_move(...)`
whichever module defines it. Patch a name in the module that defines it: the re-export is a
second reference, and the services call each other through their own modules.
"""

from __future__ import annotations

from leakmap.crm.services.accounts import (
    account_create,
    account_delete,
    account_update,
    contact_create,
    contact_delete,
    contact_update,
)
from leakmap.crm.services.activities import (
    ActivityInput,
    activity_complete,
    activity_delete,
    activity_log,
    activity_update,
)
from leakmap.crm.services.batch import (
    deals_bulk_move,
    records_bulk_assign,
    records_bulk_delete,
    records_bulk_follow_up,
)
from leakmap.crm.services.common import default_pipeline, first_open_stage
from leakmap.crm.services.deals import (
    REQUIRABLE_FIELDS,
    DealInput,
    deal_close_lost,
    deal_close_won,
    deal_create,
    deal_delete,
    deal_missing_fields,
    deal_move,
    deal_move_with_fields,
    deal_undo_move,
    deal_update,
    deals_flag_attention,
)
from leakmap.crm.services.facts import (
    deals_refresh_facts,
    deals_refresh_follow_up_facts,
    deals_refresh_lead_source,
    deals_refresh_stage_facts,
    leads_refresh_facts,
    stage_entries_refresh_facts,
)
from leakmap.crm.services.leads import (
    ConversionInput,
    LeadInput,
    lead_assign,
    lead_convert,
    lead_create,
    lead_delete,
    lead_disqualify,
    lead_intake_assign,
    lead_set_status,
    lead_update,
    leads_assign,
)
from leakmap.crm.services.pipeline import (
    LOOKUP_MODELS,
    competitor_get_or_create,
    industry_get_or_create,
    lookup_save,
    source_get_or_create,
    spend_set,
    stage_create,
    stage_delete,
    stage_reorder,
    stage_update,
    stage_use_count,
)

__all__ = [
    "ActivityInput",
    "ConversionInput",
    "DealInput",
    "LOOKUP_MODELS",
    "LeadInput",
    "REQUIRABLE_FIELDS",
    "account_create",
    "account_delete",
    "account_update",
    "activity_complete",
    "activity_delete",
    "activity_log",
    "activity_update",
    "competitor_get_or_create",
    "contact_create",
    "contact_delete",
    "contact_update",
    "deal_close_lost",
    "deals_bulk_move",
    "records_bulk_assign",
    "records_bulk_delete",
    "records_bulk_follow_up",
    "deal_close_won",
    "deal_create",
    "deal_delete",
    "deal_missing_fields",
    "deal_move",
    "deal_move_with_fields",
    "deal_undo_move",
    "deal_update",
    "deals_flag_attention",
    "deals_refresh_facts",
    "deals_refresh_follow_up_facts",
    "deals_refresh_lead_source",
    "deals_refresh_stage_facts",
    "default_pipeline",
    "first_open_stage",
    "industry_get_or_create",
    "lead_assign",
    "lead_convert",
    "lead_create",
    "lead_delete",
    "lead_disqualify",
    "lead_intake_assign",
    "lead_set_status",
    "lead_update",
    "leads_assign",
    "leads_refresh_facts",
    "lookup_save",
    "source_get_or_create",
    "spend_set",
    "stage_create",
    "stage_delete",
    "stage_entries_refresh_facts",
    "stage_reorder",
    "stage_update",
    "stage_use_count",
]
