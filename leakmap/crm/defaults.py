"""The default pipeline and lost-reason list (CONTRACT §3), installed by a data migration and
reused by tests and the demo loader."""

from __future__ import annotations

# key, zh-hans, en, probability, kind, SLA days, entry criteria (zh, en), required fields
DEFAULT_STAGES = [
    (
        "qualification",
        "初步接洽",
        "Qualification",
        10,
        "open",
        7,
        "已与决策相关人取得联系,确认有潜在需求。",
        "Contact made with someone involved in the decision; a possible need is confirmed.",
        [],
    ),
    (
        "needs_analysis",
        "需求评估",
        "Needs analysis",
        20,
        "open",
        10,
        "已确认需求、预算范围、决策人和时间表(BANT)。",
        "Need, budget range, decision maker and timeline are confirmed (BANT).",
        [],
    ),
    (
        "proposal",
        "已发方案/报价",
        "Proposal sent",
        40,
        "open",
        10,
        "已向客户发送书面方案或报价,金额和预计成交日期已填写。",
        "A written proposal or quote has been sent; amount and expected close date are filled in.",
        ["amount", "expected_close_date"],
    ),
    (
        "proposal_review",
        "方案沟通中",
        "Proposal review",
        55,
        "open",
        14,
        "客户已阅读方案并反馈,正在沟通细节或异议。",
        "The customer has read the proposal and replied; details or objections are being discussed.",
        [],
    ),
    (
        "negotiation",
        "谈判/决策中",
        "Negotiation",
        70,
        "open",
        14,
        "正在谈判价格、条款或合同,决策人已参与。",
        "Price, terms or contract are being negotiated with the decision maker involved.",
        [],
    ),
    (
        "verbal",
        "口头确认",
        "Verbal commit",
        90,
        "open",
        7,
        "决策人口头确认购买,等待签约或付款。",
        "The decision maker has said yes; signature or payment is pending.",
        [],
    ),
    (
        "won",
        "赢单",
        "Closed won",
        100,
        "won",
        None,
        "合同已签署或已回款。",
        "Contract signed or payment received.",
        [],
    ),
    (
        "lost",
        "输单",
        "Closed lost",
        0,
        "lost",
        None,
        "客户明确不买、被竞品拿下或无限期搁置;必须填写输单原因。",
        "The customer said no, chose a competitor or shelved it; a lost reason is required.",
        [],
    ),
]

# name, requires a competitor
DEFAULT_LOST_REASONS = [
    ("价格过高", False),
    ("功能不满足需求", False),
    ("决策延后", False),
    ("客户内部原因", False),
    ("被竞争对手拿下", True),
    ("联系人离职", False),
    ("失去联系", False),
]

DEFAULT_PIPELINE_NAME = "默认销售流程"


def install_defaults(apps) -> None:
    """Install the default pipeline and lost reasons if missing (idempotent).

    `apps` is the migration's historical registry or `django.apps.apps`; tests that flush the
    database (transactional tests) call it again, since a flush removes what migrations installed.
    """
    Pipeline = apps.get_model("crm", "Pipeline")
    Stage = apps.get_model("crm", "Stage")
    LostReason = apps.get_model("crm", "LostReason")
    pipeline, _ = Pipeline.objects.get_or_create(
        name=DEFAULT_PIPELINE_NAME, defaults={"is_default": True}
    )
    for order, (key, zh, en, prob, kind, sla, crit_zh, crit_en, required) in enumerate(
        DEFAULT_STAGES, start=1
    ):
        Stage.objects.get_or_create(
            pipeline=pipeline,
            key=key,
            defaults=dict(
                label_zh=zh,
                label_en=en,
                order=order,
                probability=prob,
                kind=kind,
                sla_days=sla,
                entry_criteria_zh=crit_zh,
                entry_criteria_en=crit_en,
                required_fields=required,
            ),
        )
    for name, needs_competitor in DEFAULT_LOST_REASONS:
        LostReason.objects.get_or_create(
            name=name, defaults={"requires_competitor": needs_competitor}
        )
