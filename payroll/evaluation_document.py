"""The data of 季度考评结果 (EVL, SPEC §8.2): every evaluatee's total, group means and flags, the
forms received and missing, the team forms.  Pure; ``templates/EVL.html`` lays it out."""

from __future__ import annotations

from typing import Any

from brokerflow.kernel.vocabulary import (
    EVALUATION_FLAG_LABELS,
    EVALUATION_GROUP_LABELS,
    ROLE_LABELS,
)
from brokerflow.payroll.evaluation import GROUPS, WEIGHTS, QuarterEvaluation
from brokerflow.payroll.evaluation_plan import (
    FORM_LABELS,
    TEAM_PREFIX,
    Plan,
    Slot,
    Submitted,
    group_order,
    natural_key,
    outstanding,
)

#: The evaluation's roles as a person reads them.
EVALUATION_ROLE_LABELS = {"cm": ROLE_LABELS["cm"], "regional": ROLE_LABELS["regional_manager"],
                          "regional_assistant": ROLE_LABELS["regional_assistant"]}
#: Short group names for the result table's column heads.
GROUP_HEADS = {"peer": "互评", "regional": "区域经理", "marketing": "市场营销部",
               "sales": "销售类客户经理", "gm": "总经理"}
CLOSED_LABELS = {"all_in": "全部评价表已收齐", "deadline": "截止时间已到（按已收到的评价表计算）"}


def _who(plan: Plan, user_id: str) -> str:
    name = plan.names.get(user_id)
    return f"{name}（{user_id}）" if name else user_id


def _evaluatee(plan: Plan, evaluatee: str) -> str:
    if evaluatee.startswith(TEAM_PREFIX):
        return f"{evaluatee[len(TEAM_PREFIX):]} 团队"
    return _who(plan, evaluatee)


def _group(group: str) -> str:
    return EVALUATION_GROUP_LABELS.get(group, group)


def weights_text() -> list[dict[str, str]]:
    """Seed 004's weights, one line per evaluated role."""
    return [{"role": EVALUATION_ROLE_LABELS[role],
             "weights": "，".join(f"{_group(g)} {w}" for g, w in weights.items())}
            for role, weights in WEIGHTS.items()]


def _missing(plan: Plan, slot: Slot) -> dict[str, str]:
    return {"evaluatee": _evaluatee(plan, slot.evaluatee), "group": _group(slot.group),
            "form": FORM_LABELS[slot.kind],
            "evaluators": "、".join(_who(plan, e) for e in slot.evaluators)}


def evl_body(plan: Plan, evaluation: QuarterEvaluation, forms: list[Submitted], *,
             deadline: str, closed: str, closed_reason: str) -> dict[str, Any]:
    """The EVL's ``body``: results (natural id order), forms in and missing, team forms."""
    filled = {(f.evaluatee, f.group, f.evaluator) for f in forms}
    results = []
    for r in sorted(evaluation.results, key=lambda r: natural_key(r.evaluatee_id)):
        results.append({
            "evaluatee": _who(plan, r.evaluatee_id), "role": EVALUATION_ROLE_LABELS[r.role],
            "team": r.team, "total": f"{r.total:.2f}",
            "groups": [f"{r.groups[g]:.2f}" if g in r.groups else
                       ("—" if g in WEIGHTS[r.role] else "") for g in GROUPS],
            "flags": "；".join(EVALUATION_FLAG_LABELS.get(f, f) for f in r.flags),
        })
    personal = sorted((f for f in forms if not f.evaluatee.startswith(TEAM_PREFIX)),
                      key=lambda f: (natural_key(f.evaluatee), group_order(f.group),
                                     natural_key(f.evaluator)))
    received = [{"evaluatee": _who(plan, f.evaluatee), "group": _group(f.group),
                 "evaluator": _who(plan, f.evaluator), "form": FORM_LABELS[f.kind],
                 "total": f.total,
                 "scores": "；".join(f"{item} {score}" for item, score in f.scores.items()),
                 "comment": f.comment, "at": f.at} for f in personal]
    teams = []
    for team in sorted({f.evaluatee for f in forms if f.evaluatee.startswith(TEAM_PREFIX)},
                       key=natural_key):
        scored = next((f for f in forms if f.evaluatee == team and f.kind == "team"), None)
        remark = next((f for f in forms if f.evaluatee == team and f.kind == "team_comment"),
                      None)
        items = scored.scores if scored else {}
        teams.append({
            "team": team[len(TEAM_PREFIX):],
            "scores": [{"item": i, "score": s} for i, s in items.items()],
            "total": scored.total if scored else "",
            "evaluator": _who(plan, scored.evaluator) if scored else "",
            "remark": scored.comment if scored else "",
            "gm_comment": remark.comment if remark else "",
            "gm": _who(plan, remark.evaluator) if remark else "",
            "at": scored.at if scored else "", "gm_at": remark.at if remark else "",
        })
    return {
        "quarter": evaluation.quarter, "deadline": deadline, "closed": closed,
        "closed_reason": CLOSED_LABELS.get(closed_reason, closed_reason),
        "expected": len(plan.slots), "received": len(plan.slots) - len(
            outstanding(plan, filled)),
        "group_labels": [GROUP_HEADS[g] for g in GROUPS], "weights": weights_text(),
        "results": results, "forms": received,
        "missing": [_missing(plan, s) for s in outstanding(plan, filled)], "teams": teams,
        "submitters": submitters(plan, forms),
    }


def submitters(plan: Plan, forms: list[Submitted]) -> list[dict[str, str]]:
    """Who submitted forms (natural id order): their groups, how many, first and last time."""
    rows = []
    for evaluator in sorted({f.evaluator for f in forms}, key=natural_key):
        theirs = [f for f in forms if f.evaluator == evaluator]
        times = sorted(f.at for f in theirs if f.at)
        groups = sorted({f.group for f in theirs}, key=group_order)
        rows.append({"evaluator": _who(plan, evaluator),
                     "groups": "、".join(_group(g) for g in groups),
                     "count": str(len(theirs)),
                     "first": times[0] if times else "", "last": times[-1] if times else ""})
    return rows
