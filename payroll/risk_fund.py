"""The risk fund's rules (风险基金, seed 001 第二十五条; SPEC §8.3).  Pure: no I/O.

5% of a CM's monthly gross is withheld into the fund until the position's cap (the pay engine,
``payroll.rules``).  A deduction for one of five causes, at most the balance, is proposed by the
branch manager and signed by the finance manager; the next closing applies it and withholding
resumes until the cap.  The whole balance is refunded 6 months after the CM left when no client
dispute or incident is open (finance manager, then branch manager, sign); the next closing sets
the balance to 0.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.payroll.inputs import CarriedState
from brokerflow.payroll.rules import money

DEDUCTION = "deduction"
REFUND = "refund"
KIND_LABELS: dict[str, str] = {DEDUCTION: "风险基金扣除", REFUND: "风险基金退还"}

#: The five causes of a deduction (第二十五条 1–5), by key, with the seed's words.
CAUSES: dict[str, str] = {
    "left_without_approval": "中途离职未获得批准",
    "supplies_not_returned": "中途离职获得批准，未归还宣传办公用品",
    "criminal_penalty": "违反国家法律、受到刑事处罚",
    "confidentiality_breach": "违反公司制度、泄露公司业务机密",
    "uncontrolled_risk_loss": "业务风险未有效控制而给公司造成损失",
}

#: Months after the leave date when the balance is refunded (第二十五条).
REFUND_AFTER_MONTHS = 6
PROPOSING_ROLE = "branch_manager"  # proposes a deduction
DISPUTE_ROLE = "trading_manager"  # records and clears client disputes and incidents
DISPUTE_KINDS: dict[str, str] = {"dispute": "客户纠纷", "incident": "责任事故"}
MAX_AMOUNT = Decimal("100000000")
AMOUNT_PATTERN = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class Movement:
    """An approved deduction or refund, as the closing applies it."""

    id: int
    cm_id: str
    kind: str  # deduction|refund
    amount: Decimal


def apply_movements(state: dict[str, CarriedState],
                    movements: Sequence[Movement]) -> dict[str, CarriedState]:
    """The opening state with approved movements applied, in the order they were made: a
    deduction lowers the CM's risk-fund balance (never below 0), a refund sets it to 0."""
    applied = dict(state)
    for movement in sorted(movements, key=lambda m: m.id):
        carried = applied.get(movement.cm_id, CarriedState())
        if movement.kind == REFUND:
            balance = Decimal("0")
        elif movement.kind == DEDUCTION:
            balance = max(Decimal("0"), carried.risk_fund_balance - movement.amount)
        else:
            raise ValueError(f"unknown risk-fund movement kind {movement.kind!r}")
        balance = money(balance)
        source = carried.source
        if source is not None:  # an exported state entry is carried on with the new balance
            source = {**source, "risk_fund_balance": f"{balance:.2f}"}
        applied[movement.cm_id] = replace(carried, risk_fund_balance=balance, source=source)
    return applied


def check_cause(cause: str | None) -> str:
    """``cause`` when it is one of the five causes; BadInput naming ``--cause`` else."""
    key = (cause or "").strip()
    if key not in CAUSES:
        known = "; ".join(f"{k} ({label})" for k, label in CAUSES.items())
        raise BadInput(f"a deduction needs one of the five causes of 第二十五条: {known}"
                       + (f"; not {key!r}" if key else ""), column="--cause")
    return key


def parse_amount(text: str, *, column: str = "--amount") -> Decimal:
    """A positive amount of yuan with at most two decimal places; BadInput naming ``column``
    else."""
    value = (text or "").strip()
    if not AMOUNT_PATTERN.match(value):
        raise BadInput(f"amount {text!r} must be a positive number of yuan with at most two "
                       "decimal places, e.g. 3000 or 1250.50", column=column)
    amount = Decimal(value)
    if amount <= 0 or amount >= MAX_AMOUNT:
        raise BadInput(f"amount {text!r} must be more than 0 and less than {MAX_AMOUNT}",
                       column=column)
    return money(amount)


def check_deduction(*, cause: str | None, amount: str, available: Decimal) -> tuple[str, Decimal]:
    """(cause, amount) of a valid deduction: a known cause, a positive amount with at most two
    decimals, no more than the ``available`` balance; BadInput naming the option else."""
    key = check_cause(cause)
    value = parse_amount(amount)
    if value > available:
        raise BadInput(f"amount {value:.2f} is more than the available risk-fund balance "
                       f"{money(available):.2f}", column="--amount")
    return key, value


def refund_due_date(leave_date: date) -> date:
    """When the risk fund of a CM who left on ``leave_date`` is refunded: 6 calendar months
    later, on the same day or the month's last day (2026-08-31 → 2027-02-28)."""
    index = leave_date.year * 12 + leave_date.month - 1 + REFUND_AFTER_MONTHS
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(leave_date.day, calendar.monthrange(year, month)[1]))


def role_refusal(actor: UserView, *, branch: str, role: str) -> str | None:
    """None when ``actor`` holds ``role`` in ``branch``; else why not."""
    if actor.branch == branch and role in actor.roles:
        return None
    return f"this needs the role {role} in branch {branch}"


def deduction_refusal(actor: UserView, *, branch: str) -> str | None:
    """None when ``actor`` may propose a deduction in ``branch`` (its branch manager)."""
    return role_refusal(actor, branch=branch, role=PROPOSING_ROLE)


def dispute_refusal(actor: UserView, *, branch: str) -> str | None:
    """None when ``actor`` may record or clear a dispute in ``branch`` (its trading dept
    manager)."""
    return role_refusal(actor, branch=branch, role=DISPUTE_ROLE)


def cause_label(cause: str) -> str:
    """The Chinese words of a deduction's cause ("" for none)."""
    return CAUSES.get(cause, cause)
