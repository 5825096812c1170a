"""Who evaluates whom in a branch's quarterly evaluation (SPEC §8.2, seed 004), and whether a
submitted form counts.  Pure (no I/O): the roster comes in as ``UserView``s.

From the roster (roles, teams, reporting lines): a sales CM (``cm``) is evaluated by the other
CMs whose reporting line reaches the same regional manager (``peer``), by that regional manager
(``regional``) and by the marketing dept (``marketing``, role ``marketing``); a regional manager
by the CMs under them (``sales``), the marketing dept and the branch manager (``gm``); a
regional manager assistant by the CMs of their region, its regional manager, the marketing dept
and the branch manager.  Nobody evaluates themself.  Every team of the evaluated CMs gets a team
form from the marketing dept (any one of its members) and the general manager's comment on it
(总经理评语); both are recorded and archived, not computed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.ordering import natural_key as natural_key  # re-exported
from brokerflow.payroll.evaluation import (
    CM_FORM,
    GROUPS,
    MANAGER_FORM,
    TEAM_FORM,
    EvaluationRow,
    form_total,
)

#: Roster role → the role the evaluation weighs (the first a user holds, in this order).
EVALUATED_ROLES: Final = (("regional_manager", "regional"),
                          ("regional_assistant", "regional_assistant"), ("cm", "cm"))
MARKETING_ROLE: Final = "marketing"
GM_ROLE: Final = "branch_manager"
REGIONAL_ROLE: Final = "regional_manager"
TEAM_PREFIX: Final = "team:"
#: The forms by kind (item → maximum); the general manager's comment has no items.
FORMS: Final[dict[str, dict[str, int]]] = {"cm": CM_FORM, "manager": MANAGER_FORM,
                                           "team": TEAM_FORM, "team_comment": {}}
FORM_LABELS: Final = {"cm": "附件一 客户经理考核评价表",
                      "manager": "附件二 区域经理（区域经理助理）考核评价表",
                      "team": "团队考核评价表", "team_comment": "团队考核评价表·总经理评语"}
MAX_COMMENT_CHARS: Final = 2_000
NUMBER: Final = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,12})?")  # form_total says what is wrong


@dataclass(frozen=True)
class Person:
    """Someone evaluated: their evaluation role (``cm``, ``regional``, ``regional_assistant``)."""

    user_id: str
    name: str
    role: str
    team: str


@dataclass(frozen=True)
class Slot:
    """One expected form: ``evaluatee`` (a user id, or ``team:<team>``) by ``group``, filled by
    one of ``evaluators`` (one person for a personal form)."""

    evaluatee: str
    group: str
    kind: str
    evaluators: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The forms a branch's evaluation expects, fixed when it opens; ``names``: every user id
    in it → name."""

    people: dict[str, Person]
    names: dict[str, str]
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class Submitted:
    """A form that counted, as stored: scores and total as decimal strings."""

    evaluatee: str
    evaluator: str
    group: str
    kind: str
    scores: dict[str, str]
    total: str
    comment: str
    at: str = ""


@dataclass(frozen=True)
class Accepted:
    """A submission that counts: its slot, the item scores and their total (None: a comment)."""

    slot: Slot
    scores: dict[str, Decimal]
    total: Decimal | None


def _evaluation_role(user: UserView) -> str | None:
    return next((role for held, role in EVALUATED_ROLES if held in user.roles), None)


def _regional_of(user_id: str, by_id: Mapping[str, UserView]) -> str | None:
    """The first regional manager above ``user_id`` on their reporting line (None: none)."""
    seen = {user_id}
    current = by_id[user_id].supervisor_id if user_id in by_id else None
    while current and current not in seen and current in by_id:
        if REGIONAL_ROLE in by_id[current].roles:
            return current
        seen.add(current)
        current = by_id[current].supervisor_id
    return None


def build_plan(users: Iterable[UserView]) -> Plan:
    """The expected forms of one branch from its (active) roster users."""
    by_id = {u.user_id: u for u in users}
    ids = sorted(by_id, key=natural_key)
    people = {u: Person(u, by_id[u].name, role, by_id[u].team) for u in ids
              if (role := _evaluation_role(by_id[u])) is not None}
    marketing = tuple(u for u in ids if MARKETING_ROLE in by_id[u].roles)
    gms = tuple(u for u in ids if GM_ROLE in by_id[u].roles)
    region = {u: _regional_of(u, by_id) for u in ids}
    cms = [u for u, p in people.items() if p.role == "cm"]
    slots: list[Slot] = []

    def expect(evaluatee: str, group: str, evaluators: Iterable[str], kind: str) -> None:
        for evaluator in evaluators:
            if evaluator != evaluatee:
                slots.append(Slot(evaluatee, group, kind, (evaluator,)))

    for u, person in people.items():
        if person.role == "cm":
            rm = region[u]
            expect(u, "peer", [c for c in cms if rm and region[c] == rm], "cm")
            expect(u, "regional", [rm] if rm else [], "cm")
            expect(u, "marketing", marketing, "cm")
            continue
        rm = u if person.role == "regional" else region[u]
        expect(u, "sales", [c for c in cms if rm and region[c] == rm], "manager")
        if person.role == "regional_assistant":
            expect(u, "regional", [rm] if rm else [], "manager")
        expect(u, "marketing", marketing, "manager")
        expect(u, "gm", gms, "manager")
    teams = {people[c].team for c in cms if people[c].team} if marketing else set()
    for team in sorted(teams, key=natural_key):  # the GM comments on the marketing dept's form
        slots.append(Slot(TEAM_PREFIX + team, "marketing", "team", marketing))
        if gms:
            slots.append(Slot(TEAM_PREFIX + team, "gm", "team_comment", gms))
    named = {s for slot in slots for s in slot.evaluators} | set(people)
    return Plan(people, {u: by_id[u].name for u in sorted(named, key=natural_key)},
                tuple(slots))


def plan_json(plan: Plan) -> str:
    return json.dumps({
        "people": [[p.user_id, p.name, p.role, p.team] for p in plan.people.values()],
        "names": plan.names,
        "slots": [[s.evaluatee, s.group, s.kind, list(s.evaluators)] for s in plan.slots],
    }, ensure_ascii=False)


def plan_from_json(text: str) -> Plan:
    data: dict[str, Any] = json.loads(text or "{}")
    people = {row[0]: Person(*row) for row in data.get("people", [])}
    slots = tuple(Slot(e, g, k, tuple(who)) for e, g, k, who in data.get("slots", []))
    return Plan(people, dict(data.get("names", {})), slots)


def is_filled(slot: Slot, filled: Collection[tuple[str, str, str]]) -> str | None:
    """Who filled ``slot`` (``filled``: (evaluatee, group, evaluator) of the forms in)."""
    return next((who for who in slot.evaluators
                 if (slot.evaluatee, slot.group, who) in filled), None)


def outstanding(plan: Plan, filled: Collection[tuple[str, str, str]]) -> list[Slot]:
    """The expected forms not in yet, in plan order."""
    return [slot for slot in plan.slots if is_filled(slot, filled) is None]


def parse_scores(scores: Mapping[str, object]) -> dict[str, Decimal] | str:
    """Item scores as a form sends them (numbers, or numbers written as text) as decimals; the
    reason when one is not a number (``form_total`` checks the ranges)."""
    parsed: dict[str, Decimal] = {}
    for item, value in scores.items():
        text = str(value).strip() if isinstance(value, int | float | str) else ""
        if isinstance(value, bool) or not NUMBER.fullmatch(text):
            return f"{item}: {str(value)[:40]!r} is not a score (a number like 18 or 8.5)"
        parsed[item] = Decimal(text)
    return parsed


def check_submission(plan: Plan, filled: Collection[tuple[str, str, str]], *, evaluator: str,
                     evaluatee: str, group: str, scores: Mapping[str, object],
                     comment: str) -> Accepted | str:
    """An identified evaluator's form: ``Accepted``, or the reason it does not count."""
    if evaluator == evaluatee:
        return f"self evaluation: {evaluator} evaluates themselves"
    slot = next((s for s in plan.slots if s.evaluatee == evaluatee and s.group == group
                 and evaluator in s.evaluators), None)
    if slot is None:
        mine = [f"{s.evaluatee} as {s.group}" for s in outstanding(plan, filled)
                if evaluator in s.evaluators]
        return (f"not one of your expected forms: {evaluator} does not evaluate {evaluatee or '-'}"
                f" as {group or '-'}" + (f" (still open for you: {', '.join(mine[:8])})"
                                         if mine else " (none is open for you)"))
    done_by = is_filled(slot, filled)
    if done_by is not None:
        return f"submitted already: {done_by} evaluated {evaluatee} as {group}"
    if len(comment) > MAX_COMMENT_CHARS:
        return f"the comment is longer than {MAX_COMMENT_CHARS} characters"
    if slot.kind == "team_comment":
        if scores:
            return "the general manager's comment (总经理评语) has no item scores"
        if not comment.strip():
            return "the general manager's comment (总经理评语) is empty"
        return Accepted(slot, {}, None)
    values = parse_scores(scores)
    if isinstance(values, str):
        return f"{FORM_LABELS[slot.kind]}: {values}"
    try:
        total = form_total(FORMS[slot.kind], values)
    except BadInput as exc:
        return f"{FORM_LABELS[slot.kind]}: {exc.problem}"
    return Accepted(slot, {item: values[item] for item in FORMS[slot.kind]}, total)


def evaluation_rows(plan: Plan, forms: Sequence[Submitted], *,
                    quarter: str) -> list[EvaluationRow]:
    """The rows ``compute_evaluation`` takes: one per personal form in (附件一/附件二 totals)."""
    rows = []
    for number, form in enumerate(forms, start=1):
        person = plan.people.get(form.evaluatee)
        if person is None or form.kind not in ("cm", "manager"):
            continue
        rows.append(EvaluationRow(number, quarter, form.evaluatee, person.role, person.team,
                                  form.evaluator, form.group, Decimal(form.total)))
    return rows


def group_order(group: str) -> int:
    return GROUPS.index(group) if group in GROUPS else len(GROUPS)
