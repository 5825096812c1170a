"""The quarterly 360-degree evaluation (季度考评, SPEC §8.2): weights, forms, the
``evaluations.csv`` (or ``.xlsx``) reader and the pure computation.

Checks run in file order, one row at a time, so the first offending row is the one reported
(``BadInput`` naming file, row and column; the header is row 1).  Within a row its own cells
come first, left to right (quarter, ids, known role, team, no self evaluation, known group,
score), then the row against the evaluatee's first row (role, team), the groups of that role
and the rows before it (no duplicate).  Arithmetic is exact: means and totals are rational
numbers until the single half-up rounding to 0.01.

``evaluation_from_directory`` takes a well-formed file in one fast pass and hands any other
to the checked path (``read_evaluations`` + ``compute_evaluation``), which names the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

from brokerflow.kernel.errors import BadInput
from brokerflow.payroll.inputs import (
    CONTROL_CHARACTER,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    _Cells,
    _table,
)

#: Evaluator groups and their weights by the evaluated person's role (seed 004).
WEIGHTS: Final[dict[str, dict[str, int]]] = {
    "cm": {"peer": 20, "regional": 60, "marketing": 20},
    "regional": {"sales": 80, "marketing": 10, "gm": 10},
    "regional_assistant": {"sales": 40, "regional": 40, "marketing": 10, "gm": 10},
}
ROLES: Final = tuple(WEIGHTS)
GROUPS: Final = ("peer", "regional", "marketing", "sales", "gm")

#: 附件一: the form for sales CMs (item → maximum).
CM_FORM: Final[dict[str, int]] = {
    "本岗位职责履职情况": 20, "专业技能": 10, "执行力": 10, "沟通协调能力": 10,
    "服务意识": 10, "任务完成率": 10, "工作效率": 10, "劳动纪律": 20,
}
#: 附件二: the form for regional managers and their assistants.
MANAGER_FORM: Final[dict[str, int]] = {
    "本岗位职责履职情况": 20, "责任心及全局观": 10, "任务完成情况": 30, "沟通协调能力": 10,
    "营销活动组织与拓展": 20, "劳动纪律": 10,
}
#: The team form (marketing dept director, with the general manager's 总经理评语).
TEAM_FORM: Final[dict[str, int]] = {"任务完成率": 50, "日常工作": 10, "营销活动组织": 20,
                                     "产品销售": 20}

EVALUATION_COLUMNS: Final = ("quarter", "evaluatee_id", "evaluatee_role", "team",
                             "evaluator_id", "group", "score")
QUARTER: Final = re.compile(r"[0-9]{4}Q[1-4]")
SCORE: Final = re.compile(r"[0-9]{1,3}(\.[0-9]{1,2})?")
MAX_SCORE: Final = Decimal(100)
ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
FLAGS: Final = ("below_60", "convert_to_cm", "group_missing", "star")
PROGRESS_ROWS: Final = 100_000


@dataclass(slots=True)
class EvaluationRow:
    """One evaluator's form total for one evaluatee (``row``: its row in the file)."""

    row: int
    quarter: str
    evaluatee_id: str
    role: str
    team: str
    evaluator_id: str
    group: str
    score: Decimal


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """One evaluatee's result: ``total`` and ``groups`` (the group means) rounded to 0.01."""

    evaluatee_id: str
    role: str
    team: str
    total: Decimal
    groups: dict[str, Decimal]
    flags: tuple[str, ...]


@dataclass(frozen=True)
class QuarterEvaluation:
    """Every evaluatee's result, sorted by evaluatee_id."""

    quarter: str
    results: tuple[EvaluationResult, ...]


def form_total(form: Mapping[str, int], scores: Mapping[str, Decimal | int]) -> Decimal:
    """The total of one filled-in form (``CM_FORM``, ``MANAGER_FORM`` or ``TEAM_FORM``).

    Every item must be scored, 0..its maximum with at most two decimals; an unknown item, a
    missing one or a score out of range raises ``BadInput`` naming the item."""
    for item in scores:
        if item not in form:
            raise BadInput(f"{item!r} is not an item of this form (items: {', '.join(form)})",
                           column=item)
    total = ZERO
    for item, maximum in form.items():
        if item not in scores:
            raise BadInput(f"{item} has no score", column=item)
        value = scores[item]
        if (isinstance(value, bool) or not isinstance(value, Decimal | int)
                or not Decimal(value).is_finite() or not ZERO <= value <= maximum
                or value != Decimal(value).quantize(CENT)):
            raise BadInput(f"{item} must be 0 to {maximum} with at most two decimals, not "
                           f"{value!r}", column=item)
        total += value
    return total


def check_quarter(quarter: str) -> str:
    """``quarter`` when it is written YYYYQn, else ``BadInput`` (option ``--quarter``)."""
    if not QUARTER.fullmatch(quarter):
        raise BadInput(f"quarter {quarter!r} must be YYYYQn (e.g. 2026Q3)", column="--quarter")
    return quarter


def _checked_row(c: _Cells, quarter: str) -> EvaluationRow:
    """A row through the checked path: an exact message for its first problem."""
    raw = c.text("quarter")
    if not QUARTER.fullmatch(raw):
        raise c.bad("quarter", f"not a quarter (YYYYQn): {raw!r}")
    if raw != quarter:
        raise c.bad("quarter", f"quarter {raw} is not the quarter computed ({quarter})")
    evaluatee = c.identifier("evaluatee_id")
    role = c.text("evaluatee_role")
    if role not in WEIGHTS:
        raise c.bad("evaluatee_role", f"unknown role {role!r}; one of {', '.join(ROLES)}")
    team = c.text("team")
    evaluator = c.identifier("evaluator_id")
    if evaluator == evaluatee:
        raise c.bad("evaluator_id", f"self evaluation: {evaluator} evaluates themselves")
    group = c.text("group")
    if group not in GROUPS:
        raise c.bad("group", f"unknown group {group!r}; one of {', '.join(GROUPS)}")
    text = c.text("score")
    if not SCORE.fullmatch(text) or Decimal(text) > MAX_SCORE:
        raise c.bad("score", f"not a score 0-100 with at most two decimals: {text!r}")
    return EvaluationRow(c.row, raw, evaluatee, role, team, evaluator, group, Decimal(text))


def read_evaluations(path: Path, *, quarter: str,
                     on_row: Callable[[int], None] | None = None,
                     every: int = PROGRESS_ROWS) -> Iterator[EvaluationRow]:
    """The rows of ``evaluations.csv`` (or ``.xlsx``) in file order, each checked on its own
    (cells trimmed; the first problem raises ``BadInput``); ``on_row(n)`` every ``every``
    rows.  ``compute_evaluation`` checks them against one another."""
    check_quarter(quarter)
    file, index, rows = _table(path, EVALUATION_COLUMNS)
    for number, values in rows:
        if on_row is not None and number % every == 0:
            on_row(number)
        yield _checked_row(_Cells(file, number, values, index), quarter)


class _Group:
    """One evaluator group of one evaluatee: the sum of its scores and who gave them."""

    __slots__ = ("total", "evaluators")

    def __init__(self) -> None:
        self.total = ZERO
        self.evaluators: set[str] = set()


@dataclass(slots=True)
class _Evaluatee:
    role: str
    team: str
    weights: dict[str, int]
    groups: dict[str, _Group] = field(default_factory=dict)


def _half_up(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator hundredths (both ≥ 0, denominator > 0), rounded half-up."""
    whole, rest = divmod(numerator, denominator)
    return Decimal(whole + (2 * rest >= denominator)).scaleb(-2)


def _result(evaluatee_id: str, person: _Evaluatee) -> EvaluationResult:
    """Means and total of one evaluatee, exactly (integer ratios), then rounded once."""
    weights, groups, means = person.weights, person.groups, {}
    top, bottom, weight_sum = 0, 1, 0  # the weighted sum of the means: top / bottom
    for name in GROUPS:
        group = groups.get(name)
        if group is None:
            continue
        num, den = group.total.as_integer_ratio()
        den *= len(group.evaluators)  # the mean: num / den
        means[name] = _half_up(num * 100, den)
        weight = weights[name]
        top, bottom = top * den + weight * num * bottom, bottom * den
        weight_sum += weight
    total = _half_up(top * 100, bottom * weight_sum)
    flags: tuple[str, ...] = () if len(means) == len(weights) else ("group_missing",)
    if total < 60:
        flags = ("below_60", "convert_to_cm", *flags) if person.role == "regional" else (
            "below_60", *flags)
    return EvaluationResult(evaluatee_id, person.role, person.team, total, means, flags)


def compute_evaluation(rows: Iterable[EvaluationRow], *, quarter: str,
                       file: str | None = None) -> QuarterEvaluation:
    """The quarter's results from ``rows`` (in file order; ``file`` names them in errors).

    Each row is checked in turn against the evaluatee's first row (role, team) and the rows
    before it (one row per evaluatee, evaluator and group), and again for what
    ``read_evaluations`` checks on its own (role, group, quarter, self evaluation, score
    0-100) for rows made elsewhere; the first problem raises ``BadInput``."""
    check_quarter(quarter)
    people: dict[str, _Evaluatee] = {}
    weights_of, low, high = WEIGHTS, ZERO, MAX_SCORE
    for r in rows:
        evaluatee = r.evaluatee_id
        person = people.get(evaluatee)
        if person is None:
            if r.role not in weights_of:
                raise BadInput(f"unknown role {r.role!r}; one of {', '.join(ROLES)}",
                               file=file, row=r.row, column="evaluatee_role")
            person = people[evaluatee] = _Evaluatee(r.role, r.team, weights_of[r.role])
        elif r.role != person.role:
            raise BadInput(f"{evaluatee} is a {r.role} here but a {person.role} on their "
                           "first row", file=file, row=r.row, column="evaluatee_role")
        elif r.team != person.team:
            raise BadInput(f"{evaluatee} is in team {r.team} here but in team {person.team} "
                           "on their first row", file=file, row=r.row, column="team")
        group = person.groups.get(r.group)
        if group is None:
            if r.group not in person.weights:
                raise _row_problem(r, person, quarter=quarter, file=file)
            group = person.groups[r.group] = _Group()
        evaluator, score, evaluators = r.evaluator_id, r.score, group.evaluators
        if (evaluator in evaluators or evaluator == evaluatee or r.quarter != quarter
                or not low <= score <= high):
            raise _row_problem(r, person, quarter=quarter, file=file)
        evaluators.add(evaluator)
        group.total += score
    if not people:
        raise BadInput("no data rows: the file has only its header", file=file, row=2)
    return _evaluation(people, quarter)


def _evaluation(people: dict[str, _Evaluatee], quarter: str) -> QuarterEvaluation:
    results = [_result(evaluatee, people[evaluatee]) for evaluatee in sorted(people)]
    return QuarterEvaluation(quarter, tuple(_with_stars(results)))


def _row_problem(r: EvaluationRow, person: _Evaluatee, *, quarter: str,
                 file: str | None) -> BadInput:
    """The first problem of a row that ``compute_evaluation`` refuses."""
    def bad(column: str, problem: str) -> BadInput:
        return BadInput(problem, file=file, row=r.row, column=column)

    if r.quarter != quarter:
        return bad("quarter", f"quarter {r.quarter} is not the quarter computed ({quarter})")
    if r.evaluator_id == r.evaluatee_id:
        return bad("evaluator_id", f"self evaluation: {r.evaluator_id} evaluates themselves")
    if r.group not in person.weights:
        known = "" if r.group in GROUPS else "unknown group; "
        return bad("group", f"{known}group {r.group!r} does not evaluate a {person.role} "
                   f"(the groups of a {person.role}: {', '.join(person.weights)})")
    if r.evaluator_id in person.groups[r.group].evaluators:
        return bad("evaluator_id", f"duplicate: {r.evaluator_id} already evaluated "
                   f"{r.evaluatee_id} as {r.group} (one row per evaluatee, evaluator, group)")
    return bad("score", f"score {r.score} is not 0-100")


def _with_stars(results: list[EvaluationResult]) -> list[EvaluationResult]:
    """``star`` for the best ``cm`` of each team not below 60 (a tie: the lowest id)."""
    best: dict[str, int] = {}  # team → index into results
    for n, result in enumerate(results):  # sorted by id: on a tie the first one stays
        if result.role != "cm" or "below_60" in result.flags:
            continue
        current = best.get(result.team)
        if current is None or result.total > results[current].total:
            best[result.team] = n
    for n in best.values():
        r = results[n]
        results[n] = EvaluationResult(r.evaluatee_id, r.role, r.team, r.total, r.groups,
                                      tuple(sorted((*r.flags, "star"))))
    return results


def find_evaluations(data_dir: Path) -> Path:
    """``DIR/evaluations.csv``, else ``DIR/evaluations.xlsx``."""
    if not data_dir.is_dir():
        raise BadInput("no such directory", file=str(data_dir))
    for suffix in (".csv", ".xlsx"):
        path = data_dir / f"evaluations{suffix}"
        if path.exists():
            return path
    raise BadInput(f"no evaluations.csv or evaluations.xlsx in {data_dir}",
                   file=str(data_dir / "evaluations.csv"))


def _plain_text(value: str, limit: int) -> bool:
    """Whether ``value`` passes the checked path unchanged (no trimming, no error)."""
    return (bool(value) and len(value) <= limit and value == value.strip()
            and not CONTROL_CHARACTER.search(value))


class _Known:
    """Cell texts already found valid as they stand: the fast path looks them up."""

    __slots__ = ("ids", "teams", "scores")

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.teams: set[str] = set()
        self.scores: dict[str, Decimal] = {}  # at most 10,001 texts

    def learn(self, evaluatee: str, evaluator: str, team: str, score: str) -> None:
        """Remember those of the texts that are valid as they stand."""
        for value in (evaluatee, evaluator):
            if value not in self.ids and _plain_text(value, MAX_ID_LENGTH):
                self.ids.add(value)
        if team not in self.teams and _plain_text(team, MAX_TEXT_LENGTH):
            self.teams.add(team)
        if score not in self.scores and SCORE.fullmatch(score) and Decimal(score) <= MAX_SCORE:
            self.scores[score] = Decimal(score)


def _fast_evaluation(path: Path, *, quarter: str, on_row: Callable[[int], None] | None,
                     every: int = PROGRESS_ROWS) -> QuarterEvaluation | None:
    """The evaluation when every row is valid as it stands (no cell to trim) and breaks no
    rule, in one pass: texts seen before are looked up, not checked again.  None at the first
    row that it cannot take, for the checked path to take over (and name the problem)."""
    file, index, rows = _table(path, EVALUATION_COLUMNS)
    i_quarter, i_evaluatee, i_role, i_team, i_evaluator, i_group, i_score = (
        index[c] for c in EVALUATION_COLUMNS)
    known = _Known()
    ids, teams, scores, weights_of = known.ids, known.teams, known.scores, WEIGHTS
    people: dict[str, _Evaluatee] = {}
    for number, v in rows:
        if on_row is not None and number % every == 0:
            on_row(number)
        evaluatee, evaluator, team = v[i_evaluatee], v[i_evaluator], v[i_team]
        score = scores.get(v[i_score])
        if score is None or not (evaluatee in ids and evaluator in ids and team in teams):
            known.learn(evaluatee, evaluator, team, v[i_score])  # a text not seen before
            score = scores.get(v[i_score])
            if score is None or not (evaluatee in ids and evaluator in ids and team in teams):
                return None
        if v[i_quarter] != quarter or evaluatee == evaluator:
            return None
        person = people.get(evaluatee)
        if person is None:
            role = v[i_role]
            if role not in weights_of:
                return None
            person = people[evaluatee] = _Evaluatee(role, team, weights_of[role])
        elif v[i_role] != person.role or team != person.team:
            return None
        group = person.groups.get(v[i_group])
        if group is None:
            if v[i_group] not in person.weights:
                return None
            group = person.groups[v[i_group]] = _Group()
        evaluators = group.evaluators
        if evaluator in evaluators:
            return None
        evaluators.add(evaluator)
        group.total += score
    return _evaluation(people, quarter) if people else None


def evaluation_from_directory(*, quarter: str, data_dir: Path,
                              progress: Callable[[int], None] | None = None
                              ) -> QuarterEvaluation:
    """The evaluation of ``quarter`` from ``DIR/evaluations.csv`` (or ``.xlsx``).

    Well-formed files take the one-pass fast path; a file with a row it cannot take is read
    again through ``read_evaluations`` and ``compute_evaluation``, which trim cells and name
    the first problem exactly."""
    check_quarter(quarter)
    path = find_evaluations(data_dir)
    evaluation = _fast_evaluation(path, quarter=quarter, on_row=progress)
    if evaluation is None:
        evaluation = compute_evaluation(read_evaluations(path, quarter=quarter, on_row=progress),
                                        quarter=quarter, file=str(path))
    return evaluation
