"""Approval chains as data, and the pure rules that move them.  No I/O here.

A chain is an ordered tuple of steps.  A ``single`` step is signed by one person holding one of
its roles; a ``countersign`` step is signed once by every department named at the step that
``names_countersigners`` (any order).  ``progress`` derives where a request stands from the
decisions so far; ``check_form`` says why a submitted form may not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from brokerflow.kernel.identity import UserView
from brokerflow.kernel.vocabulary import COUNTERSIGN_DEPARTMENTS, OUTCOME_FOR_DECISION, DecisionKind


@dataclass(frozen=True)
class Step:
    name: str
    label: str  # what the UI and documents call it (Chinese)
    roles: frozenset[str] = frozenset()
    kind: Literal["single", "countersign"] = "single"
    names_countersigners: bool = False


@dataclass(frozen=True)
class Chain:
    name: str
    steps: tuple[Step, ...]
    distinct_signers: bool = True  # nobody signs two steps of one request (revision)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True)
class Decision:
    """One counted signature on a step."""

    step: str
    signer_id: str
    role: str
    decision: str
    opinion: str = ""
    at: str = ""
    department: str | None = None  # countersign: the department signed for
    departments: tuple[str, ...] = ()  # the naming step: departments that must countersign
    details: tuple[tuple[str, str], ...] = ()  # step-specific form fields (never the secret)


@dataclass(frozen=True)
class Waiting:
    """The request waits on ``step``; ``may_sign`` lists the roles (departments) still open."""

    step: Step
    may_sign: tuple[str, ...]
    done_departments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finished:
    outcome: Literal["approved", "rejected", "returned"]
    step: str | None = None  # the step that ended it (reject/return)


@dataclass(frozen=True)
class Form:
    """A submitted approval form, as the rules see it (secret already checked)."""

    signer_id: str
    decision: str
    opinion: str = ""
    departments: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormCheck:
    ok: bool
    reason: str = ""
    role: str = ""
    department: str | None = None
    departments: tuple[str, ...] = field(default_factory=tuple)


def named_departments(decisions: Sequence[Decision]) -> tuple[str, ...]:
    for d in decisions:
        if d.departments:
            return d.departments
    return ()


def progress(chain: Chain, decisions: Sequence[Decision]) -> Waiting | Finished:
    """Where a request stands, from its (one revision's) decisions in order."""
    for d in decisions:
        if d.decision in OUTCOME_FOR_DECISION:
            outcome = OUTCOME_FOR_DECISION[d.decision]
            return Finished(outcome, d.step)  # type: ignore[arg-type]
    by_step: dict[str, list[Decision]] = {}
    for d in decisions:
        by_step.setdefault(d.step, []).append(d)
    departments = named_departments(decisions)
    for step in chain.steps:
        signed = by_step.get(step.name, [])
        if step.kind == "single":
            if not signed:
                return Waiting(step, tuple(sorted(step.roles)))
            continue
        done = tuple(sorted({d.department for d in signed if d.department}))
        required = step.roles or frozenset(departments)  # fixed, or named earlier
        remaining = tuple(sorted(set(required) - set(done)))
        if remaining:
            return Waiting(step, remaining, done)
    return Finished("approved")


def check_form(
    chain: Chain,
    waiting: Waiting,
    form: Form,
    *,
    signer: UserView | None,
    secret_ok: bool,
    submitter_id: str,
    decisions: Sequence[Decision],
    known_departments: Iterable[str] = COUNTERSIGN_DEPARTMENTS,
    branch: str | None = None,
) -> FormCheck:
    """Whether ``form`` may count on ``waiting``; the first reason it may not.

    ``branch``: for chains signed by a branch's own management, the signer's branch.
    """
    if signer is None or not secret_ok:
        return FormCheck(False, f"unknown signer {form.signer_id!r} or wrong secret")
    if branch is not None and signer.branch != branch:
        return FormCheck(False, f"{signer.user_id} is not staff of branch {branch}")
    if form.decision not in tuple(DecisionKind):
        return FormCheck(False, f"decision must be one of {', '.join(DecisionKind)}")
    if form.decision in (DecisionKind.REJECT, DecisionKind.RETURN) and not form.opinion.strip():
        return FormCheck(False, f"an opinion is required to {form.decision}")
    if signer.user_id == submitter_id:
        return FormCheck(False, f"{signer.user_id} submitted this request and may not sign it")
    if any(d.signer_id == signer.user_id and (chain.distinct_signers or d.step == waiting.step.name)
           for d in decisions):
        return FormCheck(False, f"{signer.user_id} has already signed a step of this request")
    open_roles = sorted(set(waiting.may_sign) & signer.roles)
    if not open_roles:
        return FormCheck(
            False,
            f"{signer.user_id} holds none of the roles that may sign now "
            f"({', '.join(waiting.may_sign)})",
        )
    role = open_roles[0]
    if waiting.step.kind == "countersign":
        return FormCheck(True, role=role, department=role)
    departments: tuple[str, ...] = ()
    if waiting.step.names_countersigners:
        departments = tuple(sorted({d.strip() for d in form.departments if d.strip()}))
        unknown = sorted(set(departments) - set(known_departments))
        if unknown:
            return FormCheck(
                False,
                f"unknown countersign department(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known_departments))}",
            )
    elif form.departments:
        return FormCheck(False, f"step {waiting.step.name} does not name countersigners")
    return FormCheck(True, role=role, departments=departments)


#: 报批流程 (seed 002 第四条): branch → brokerage office → channel dept (names the countersign
#: departments) → countersign → brokerage office completes the filing → VP → opinions back.
FILING_CHAIN = Chain(
    name="filing",
    steps=(
        Step("office_receive", "经纪业务综合室 接收转报", frozenset({"brokerage_office"})),
        Step("channel_review", "渠道管理部 审核并注明会签部门", frozenset({"channel_dept"}),
             names_countersigners=True),
        Step("countersign", "会签部门 会签", kind="countersign"),  # departments named above
        Step("office_complete", "经纪业务综合室 协助走完报备流程",
             frozenset({"brokerage_office"})),
        Step("vp_instruction", "主管副总裁 批示", frozenset({"vp"})),
    ),
)


#: 薪酬签批 (seed 002 第十五条): chief accountant → deputy manager → branch manager.
PAYROLL_CHAIN = Chain(
    name="payroll",
    steps=(
        Step("chief_accountant", "主办会计 审核", frozenset({"chief_accountant"})),
        Step("deputy_manager", "副经理 审核", frozenset({"deputy_manager"})),
        Step("branch_manager", "营业部经理 签批", frozenset({"branch_manager"})),
    ),
)


#: 客户归属确认 (seed 001 第三十一条): first review by counter clerk or back office → trading dept
#: manager review → finance manager and branch manager (both, any order) → trading dept manager
#: enters the attribution.  The trading dept manager signs two steps by design.
ATTRIBUTION_CHAIN = Chain(
    name="attribution",
    steps=(
        Step("first_review", "柜台/后勤 初审", frozenset({"counter_clerk", "backoffice"})),
        Step("trading_review", "交易部经理 复核", frozenset({"trading_manager"})),
        Step("finance_and_branch", "财务经理、营业部经理 签字",
             frozenset({"finance_manager", "branch_manager"}), kind="countersign"),
        Step("trading_entry", "交易部经理 录入归属", frozenset({"trading_manager"})),
    ),
    distinct_signers=False,
)


#: 晋升 / 见习转正 on application (seed 001 第十七条; SPEC §8.3): the CM's stationed or regional
#: manager → project director → branch manager.
PROMOTION_CHAIN = Chain(
    name="promotion",
    steps=(
        Step("supervisor", "驻点/区域经理 审核",
             frozenset({"stationed_manager", "regional_manager"})),
        Step("project_director", "项目总监 考核", frozenset({"project_director"})),
        Step("branch_manager", "营业部经理 审批", frozenset({"branch_manager"})),
    ),
)


#: 破格晋升 (more than one level, or without eligibility): after the project director's review
#: the branch general manager (营业部经理/总经理) approves.
EXCEPTIONAL_PROMOTION_CHAIN = Chain(
    name="exceptional_promotion",
    steps=(
        PROMOTION_CHAIN.step("supervisor"),
        PROMOTION_CHAIN.step("project_director"),
        Step("general_manager", "营业部总经理 批准（破格晋升）", frozenset({"branch_manager"})),
    ),
)


#: 降级 proposed by the closing (seed 001 第十八条) or the quarterly evaluation (转为营销经理):
#: the branch manager confirms.
DEMOTION_CHAIN = Chain(
    name="demotion",
    steps=(Step("branch_manager", "营业部经理 确认降级", frozenset({"branch_manager"})),),
)


#: 风险基金扣除 (seed 001 第二十五条; SPEC §8.3): proposed by the branch manager, signed by the
#: finance manager.
RISK_FUND_DEDUCTION_CHAIN = Chain(
    name="risk_fund_deduction",
    steps=(Step("finance_manager", "财务经理 审核扣除", frozenset({"finance_manager"})),),
)


#: 风险基金退还 (seed 001 第二十五条): 6 months after the CM left, with no client dispute or
#: incident: finance manager, then branch manager (two different people).
RISK_FUND_REFUND_CHAIN = Chain(
    name="risk_fund_refund",
    steps=(
        Step("finance_manager", "财务经理 审核退还", frozenset({"finance_manager"})),
        Step("branch_manager", "营业部经理 批准退还", frozenset({"branch_manager"})),
    ),
)


#: 期初数据导入 (SPEC §10): a branch's existing attributions or opening carried state, imported
#: once as one batch: the trading dept manager reviews it, the branch manager approves it.
OPENING_IMPORT_CHAIN = Chain(
    name="opening_import",
    steps=(
        Step("trading_manager", "交易部经理 审核", frozenset({"trading_manager"})),
        Step("branch_manager", "营业部经理 批准", frozenset({"branch_manager"})),
    ),
)
