"""A synthetic, realistic data set written as import CSVs (`leakmap generate`).

Deterministic for a seed: one `random.Random(seed)` drives everything in a fixed order, and the
time span ends on a fixed day (`until`), so the same arguments always give byte-identical files.
The span never ends after `now` when one is given: an import refuses a time that has happened
later than the moment of import (CONTRACT §2), so the demo, generated up to today, stops at the
present minute; plans (next follow-ups, due tasks, expected close dates) still lie ahead.
Rows are written as they are made, so a million leads need little memory.

What makes it realistic (and what the demo's reports are meant to find):
- six sources of very different quality and cost: 百度广告 brings many leads that rarely close
  (~2 % of leads won) at the highest spend; 老客户转介绍 few leads, ~30 % won; 展会 ~10 %;
- about 30 % of leads become deals; deals walk the default pipeline with most dying early,
  some skipping a stage and a few reopening after being lost;
- reps differ: 小王's deals stall after the proposal with few follow-ups (~3 per deal against
  小张's ~6); 小李 reaches negotiation often but wins rarely, losing on price or to competitors.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from leakmap.exchange.columns import FILE_NAMES, KINDS

DEFAULT_UNTIL = dt.date(2026, 9, 30)
SPAN_DAYS = 182
DAY = 86400.0

# name, share of leads, lead→deal rate, win rate of its deals, cost per lead (CNY)
SOURCES = [
    ("百度广告", 0.40, 0.185, 0.15, 85.0),
    ("抖音广告", 0.20, 0.26, 0.16, 60.0),
    ("官网表单", 0.15, 0.40, 0.175, 12.0),
    ("公众号", 0.10, 0.30, 0.17, 20.0),
    ("展会", 0.10, 0.45, 0.30, 300.0),
    ("老客户转介绍", 0.05, 0.85, 0.70, 30.0),
]

STAGES = ["qualification", "needs_analysis", "proposal", "proposal_review", "negotiation", "verbal"]
# Chance of moving on from each open stage (the last one: to won), before source and rep effects.
BASE_CONTINUE = [0.75, 0.70, 0.70, 0.75, 0.70, 0.90]
BASE_WIN = 0.75 * 0.70 * 0.70 * 0.75 * 0.70 * 0.90
DWELL_DAYS = [6.0, 8.0, 9.0, 10.0, 10.0, 6.0]
# Of the deals that do not move on, the share left open (stalled) rather than lost.
STALL = [0.10, 0.10, 0.15, 0.15, 0.15, 0.10]

# username, display name, team, continuation factors per stage, stall after proposal, follow-ups
# per deal, dwell factor after the proposal
BASE_REPS = [
    ("xiaoli", "小李", "华东一组", [1.12, 1.12, 1.12, 1.12, 0.30, 0.80], None, 4.0, 1.0),
    ("xiaowang", "小王", "华东一组", [1.0, 1.0, 0.55, 0.70, 1.0, 1.0], 0.65, 3.0, 2.0),
    ("xiaozhang", "小张", "华东一组", [1.06] * 6, None, 6.0, 1.0),
    ("xiaoliu", "小刘", "华南一组", [1.0] * 6, None, 4.0, 1.0),
    ("xiaochen", "小陈", "华南一组", [1.0] * 6, None, 4.0, 1.0),
    ("xiaozhao", "小赵", "华南一组", [0.98] * 6, None, 4.0, 1.0),
]
BASE_MANAGERS = [("zhoujingli", "周经理", "华东一组"), ("wujingli", "吴经理", "华南一组")]

EARLY_LOST = [
    ("失去联系", 35),
    ("功能不满足需求", 25),
    ("客户内部原因", 15),
    ("决策延后", 15),
    ("联系人离职", 10),
]
LATE_LOST = [("价格过高", 35), ("被竞争对手拿下", 30), ("决策延后", 20), ("功能不满足需求", 15)]
NEGOTIATION_LOST_LI = [("价格过高", 55), ("被竞争对手拿下", 45)]
COMPETITORS = ["销售易", "纷享销客", "Salesforce", "用友", "金蝶"]
DISQUALIFY = ["无预算", "非目标客户", "联系不上", "重复线索", "仅咨询"]
INDUSTRIES = ["制造业", "零售", "互联网", "教育", "医疗", "金融", "物流", "房地产"]
TITLES = ["采购经理", "IT负责人", "总经理", "运营总监", "销售总监", "行政主管"]
PRODUCTS = [
    ("CRM标准版", 30000),
    ("CRM专业版", 80000),
    ("CRM旗舰版", 200000),
    ("营销自动化", 60000),
    ("客服系统", 45000),
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌宇浩凯鹏飞晨欣怡"
CITIES = [
    "上海",
    "苏州",
    "杭州",
    "南京",
    "深圳",
    "广州",
    "厦门",
    "宁波",
    "无锡",
    "佛山",
    "东莞",
    "合肥",
]
WORDS = [
    "恒达",
    "华信",
    "中科",
    "鼎盛",
    "新锐",
    "天成",
    "博远",
    "汇通",
    "正和",
    "瑞丰",
    "金石",
    "海纳",
    "宏图",
    "智联",
    "启明",
    "万象",
]
TRADES = ["科技", "实业", "贸易", "电子", "物流", "医药", "教育", "制造"]
ACT_KINDS = [("call", 45), ("email", 20), ("meeting", 20), ("note", 15)]
SUBJECTS = {
    "call": ["电话跟进", "确认需求", "约下次沟通时间", "回访"],
    "email": ["发送资料", "发送方案", "报价邮件", "会议纪要"],
    "meeting": ["上门拜访", "产品演示", "方案讲解", "商务谈判"],
    "note": ["客户反馈记录", "内部讨论", "竞品情况"],
}


@dataclass
class Rep:
    username: str
    display_name: str
    team: str
    factors: list[float]
    stall_after_proposal: float | None
    follow_ups: float
    slow_after_proposal: float


def _weighted(rng: random.Random, items: list[tuple[str, int]]) -> str:
    total = sum(w for _, w in items)
    x = rng.random() * total
    for item, w in items:
        x -= w
        if x < 0:
            return item
    return items[-1][0]


def _reps(n_leads: int, rng: random.Random) -> tuple[list[Rep], list[tuple[str, str, str]]]:
    reps = [Rep(*r) for r in BASE_REPS]
    managers = list(BASE_MANAGERS)
    extra = max(0, n_leads // 4000 - len(reps))
    for k in range(extra):
        team = f"销售{k // 8 + 1}组"
        if k % 8 == 0:
            managers.append((f"mgr{k // 8 + 1:03d}", rng.choice(SURNAMES) + "经理", team))
        factor = round(rng.uniform(0.9, 1.08), 3)
        reps.append(
            Rep(
                f"rep{k + 1:04d}",
                rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                team,
                [factor] * 6,
                None,
                round(rng.uniform(3.0, 5.5), 1),
                1.0,
            )
        )
    return reps, managers


def local_now() -> dt.datetime:
    """The present as a naive time in the install's time zone, for `generate(now=...)`."""
    import zoneinfo

    from django.conf import settings
    from django.utils import timezone

    return timezone.now().astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).replace(tzinfo=None)


def generate(
    out: str | Path,
    *,
    leads: int,
    seed: int = 1,
    until: dt.date = DEFAULT_UNTIL,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Write the six import files into `out`; returns rows written per kind. `now`: the present
    as a naive time in the install's time zone (the zone the files' times are read in); the
    span ends at the earlier of `until` 23:59 and `now`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    reps, managers = _reps(leads, rng)
    end = dt.datetime.combine(until, dt.time(23, 59))
    if now is not None:
        end = min(end, now.replace(second=0, microsecond=0))
    start = dt.datetime.combine(until - dt.timedelta(days=SPAN_DAYS - 1), dt.time(0, 0))
    base = start
    horizon = (end - start).total_seconds()
    fmt_cache: dict[int, str] = {}

    def ts(seconds: float) -> str:
        # Whole minutes, as a CRM user would type them; naive = the install's time zone.
        minute = int(seconds // 60)
        s = fmt_cache.get(minute)
        if s is None:
            s = (base + dt.timedelta(minutes=minute)).isoformat(timespec="minutes")
            if len(fmt_cache) > 200_000:
                fmt_cache.clear()
            fmt_cache[minute] = s
        return s

    def day_of(seconds: float) -> str:
        return (base + dt.timedelta(seconds=seconds)).date().isoformat()

    counts: Counter[str] = Counter()
    files = {
        kind: open(out / FILE_NAMES[kind], "w", encoding="utf-8", newline="") for kind in KINDS
    }
    try:
        # No escape_formula here (cells.py): every cell is built from the word lists above and
        # numbers, none of which starts like a formula, and this writer runs millions of rows.
        w = {kind: csv.writer(fh) for kind, fh in files.items()}
        for kind, writer in w.items():
            writer.writerow(KINDS[kind])

        manager_of_team = {team: username for username, _, team in managers}
        for username, display, team in managers:
            w["users"].writerow([username, display, "manager", team, "", f"{username}@example.com"])
        for r in reps:
            w["users"].writerow(
                [
                    r.username,
                    r.display_name,
                    "rep",
                    r.team,
                    manager_of_team.get(r.team, ""),
                    f"{r.username}@example.com",
                ]
            )
        counts["users"] = len(managers) + len(reps)

        source_weights = [s[1] for s in SOURCES]
        source_factor = [
            [min(0.97, c * (s[3] / BASE_WIN) ** (1 / 6)) for c in BASE_CONTINUE] for s in SOURCES
        ]
        per_month: Counter[tuple[int, str]] = Counter()
        lead_rows = w["leads"].writerow
        deal_rows = w["deals"].writerow
        hist_rows = w["stage-history"].writerow
        act_rows = w["activities"].writerow
        n_act = 0
        n_deals = 0
        n_hist = 0
        step = horizon / max(leads, 1)

        for i in range(leads):
            s_idx = rng.choices(range(len(SOURCES)), source_weights)[0]
            source = SOURCES[s_idx][0]
            rep = reps[rng.randrange(len(reps))]
            # Leads arrive in time order, in office hours mostly.
            t_lead = min(horizon - 60, i * step + rng.random() * step)
            per_month[(ts(t_lead)[:7], source)] += 1
            ext = f"L{i + 1:07d}"
            name = (
                rng.choice(SURNAMES)
                + rng.choice(GIVEN)
                + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
            )
            company = f"{rng.choice(CITIES)}{rng.choice(WORDS)}{rng.choice(TRADES)}有限公司"
            industry = rng.choice(INDUSTRIES)
            product, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            budget = round(price * rng.uniform(0.6, 1.6), -2)
            converts = rng.random() < SOURCES[s_idx][2]
            t_deal = t_lead + rng.expovariate(1 / (3 * DAY)) + 600
            if converts and t_deal >= horizon:
                converts = False
            lead_acts: list[float] = []
            if converts:
                status, reason = "converted", ""
            elif rng.random() < 0.6:
                k = 1 if rng.random() < 0.7 else 2
                lead_acts = sorted(t_lead + rng.random() * 5 * DAY for _ in range(k))
                lead_acts = [t for t in lead_acts if t < horizon]
                roll = rng.random()
                if not lead_acts:
                    status, reason = "new", ""
                elif roll < 0.5:
                    status, reason = "contacted", ""
                elif roll < 0.65:
                    status, reason = "qualified", ""
                else:
                    status, reason = "disqualified", rng.choice(DISQUALIFY)
            elif rng.random() < 0.7:
                status, reason = "new", ""
            else:
                status, reason = "disqualified", "联系不上"
            lead_rows(
                [
                    ext,
                    name,
                    company,
                    f"c{i + 1}@example.com",
                    f"1{rng.randrange(30, 90)}{rng.randrange(10**8):08d}",
                    source,
                    industry,
                    rng.choice(TITLES),
                    f"{budget:.2f}",
                    product,
                    rep.username,
                    status,
                    ts(t_lead),
                    reason,
                ]
            )
            for t in lead_acts:
                n_act += 1
                act_rows(
                    [f"A{n_act:08d}", "", ext, "call", "首次电话联系", rep.username, "", ts(t), ""]
                )
            if not converts:
                continue

            # --- the deal's walk through the pipeline
            n_deals += 1
            dext = f"D{n_deals:07d}"
            cont = [
                min(0.97, c * f) for c, f in zip(source_factor[s_idx], rep.factors, strict=True)
            ]
            stage = 1 if rng.random() < 0.1 else 0
            t = t_deal
            history = [(stage, t)]
            outcome = "open"
            closed = None
            lost_reason = competitor = ""
            reopened = False
            while True:
                slow = rep.slow_after_proposal if stage >= 2 else 1.0
                t_next = t + rng.expovariate(1 / (DWELL_DAYS[stage] * slow * DAY)) + 3600
                if t_next >= horizon:
                    break
                if rng.random() < cont[stage]:
                    nxt = stage + 1
                    if nxt < 5 and rng.random() < 0.07:
                        nxt += 1  # a skipped stage
                    if nxt == 6:
                        outcome, closed = "won", t_next
                        history.append((6, t_next))
                        break
                    stage, t = nxt, t_next
                    history.append((stage, t))
                    continue
                stall = STALL[stage]
                if rep.stall_after_proposal is not None and stage in (2, 3):
                    stall = rep.stall_after_proposal
                if rng.random() < stall:
                    # Going cold. Most reps close a deal that has been silent for a month or
                    # two as lost ("失去联系"); the ones gone cold recently are still open.
                    t_dead = t_next + rng.uniform(30, 75) * DAY
                    if t_dead < horizon and rng.random() < 0.8:
                        outcome, closed, lost_reason = "lost", t_dead, "失去联系"
                        history.append((7, t_dead))
                    break
                if rep.username == "xiaoli" and stage == 4:
                    lost_reason = _weighted(rng, NEGOTIATION_LOST_LI)
                else:
                    lost_reason = _weighted(rng, EARLY_LOST if stage < 2 else LATE_LOST)
                competitor = rng.choice(COMPETITORS) if lost_reason == "被竞争对手拿下" else ""
                t_reopen = t_next + rng.uniform(3, 20) * DAY
                if not reopened and rng.random() < 0.04 and t_reopen < horizon:
                    # Lost, then the customer came back: reopened where it was.
                    reopened = True
                    history.append((7, t_next))
                    history.append((stage, t_reopen))
                    t = t_reopen
                    lost_reason = competitor = ""
                    continue
                outcome, closed = "lost", t_next
                history.append((7, t_next))
                break
            amount = round(budget * rng.uniform(0.7, 1.2), -2)
            close_days = rng.uniform(30, 120)
            last_stage = history[-1][0]
            stage_key = (
                "won" if last_stage == 6 else "lost" if last_stage == 7 else STAGES[last_stage]
            )
            end_t = max(t_deal, closed if closed is not None else horizon - 60)
            # Follow-ups: spread over the deal's life, as many as the rep tends to make.
            n_follow = max(0, round(rng.gauss(rep.follow_ups, rep.follow_ups * 0.35)))
            follow = sorted(t_deal + rng.random() * (end_t - t_deal) for _ in range(n_follow))
            next_follow_up = ""
            if outcome == "open" and rng.random() < 0.4:
                next_follow_up = ts(horizon + rng.uniform(1, 14) * DAY)
            deal_rows(
                [
                    dext,
                    ext,
                    f"{company} - {product}",
                    company,
                    name,
                    f"{amount:.2f}",
                    stage_key,
                    rep.username,
                    "",
                    "",
                    ts(t_deal),
                    day_of(t_deal + close_days * DAY),
                    ts(closed) if closed is not None else "",
                    lost_reason,
                    competitor,
                    next_follow_up,
                ]
            )
            for st, at in history:
                key = "won" if st == 6 else "lost" if st == 7 else STAGES[st]
                hist_rows([dext, key, ts(at)])
            n_hist += len(history)
            for at in follow:
                n_act += 1
                kind = _weighted(rng, ACT_KINDS)
                act_rows(
                    [
                        f"A{n_act:08d}",
                        dext,
                        "",
                        kind,
                        rng.choice(SUBJECTS[kind]),
                        rep.username,
                        "",
                        ts(at),
                        "",
                    ]
                )
            if outcome == "open" and rng.random() < 0.3:
                n_act += 1
                due = horizon + rng.uniform(0.5, 10) * DAY
                act_rows(
                    [f"A{n_act:08d}", dext, "", "task", "跟进客户", rep.username, ts(due), "", ""]
                )

        # Monthly spend per source, from the leads it brought that month.
        cpl = {s[0]: s[4] for s in SOURCES}
        months = sorted({m for m, _ in per_month})
        for month in months:
            for source, *_ in SOURCES:
                n = per_month[(month, source)]
                if n:
                    amount = n * cpl[source] * rng.uniform(0.9, 1.1)
                    w["spend"].writerow([source, month, f"{amount:.2f}"])
                    counts["spend"] += 1
        counts.update(
            {"leads": leads, "deals": n_deals, "stage-history": n_hist, "activities": n_act}
        )
    finally:
        for fh in files.values():
            fh.close()
    return dict(counts)
