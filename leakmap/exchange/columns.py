"""The import/export columns of each kind (CONTRACT §2), in the order exports write them."""

from __future__ import annotations

KINDS: dict[str, list[str]] = {
    "users": ["username", "display_name", "role", "team", "manager", "email"],
    "leads": [
        "external_id",
        "name",
        "company",
        "email",
        "phone",
        "source",
        "industry",
        "title",
        "budget",
        "product",
        "owner",
        "status",
        "created_at",
        "disqualified_reason",
    ],
    "deals": [
        "external_id",
        "lead_external_id",
        "name",
        "account",
        "contact",
        "amount",
        "stage",
        "owner",
        "source",
        "industry",
        "created_at",
        "expected_close_date",
        "closed_at",
        "lost_reason",
        "competitor",
        "next_follow_up",
    ],
    "stage-history": ["deal_external_id", "stage", "entered_at"],
    "activities": [
        "external_id",
        "deal_external_id",
        "lead_external_id",
        "kind",
        "subject",
        "owner",
        "due_at",
        "done_at",
        "notes",
    ],
    "spend": ["source", "month", "amount"],
}

# Columns a file must have in its header; the others may be left out (blank).
REQUIRED: dict[str, list[str]] = {
    "users": ["username"],
    "leads": ["external_id", "name", "created_at"],
    "deals": ["external_id", "name", "stage", "created_at"],
    "stage-history": ["deal_external_id", "stage", "entered_at"],
    "activities": ["external_id", "kind"],
    "spend": ["source", "month", "amount"],
}

# The file names `leakmap generate` writes, one per kind, in import order.
FILE_NAMES = {kind: f"{kind}.csv" for kind in KINDS}
IMPORT_ORDER = ["users", "leads", "deals", "stage-history", "activities", "spend"]
