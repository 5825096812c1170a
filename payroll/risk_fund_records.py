"""Risk-fund movements and client disputes in the database (风险基金, SPEC §8.3).

A CM's balance is their latest carried state (``PayrollCarry``; a CM who left keeps one, with
the leave date, until the refund).  A deduction (branch manager) or a refund (due 6 months
after the leave date, no open client dispute or incident) is a ``RiskFundMovement``: signed
through its chain by the ``risk-fund`` flow, applied by the next closing of the branch
(``movements_for_closing`` → ``payroll.risk_fund.apply_movements`` → ``mark_applied``).
Keyword-only functions taking a ``Session``; the caller commits.  Every change is audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import AccessDenied, BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import PayrollCarry, PayrollLineRecord, PayrollRun, User
from brokerflow.kernel.staff_models import ClientDispute, RiskFundMovement
from brokerflow.payroll.risk_fund import (
    DEDUCTION,
    DISPUTE_KINDS,
    KIND_LABELS,
    REFUND,
    Movement,
    cause_label,
    check_deduction,
    deduction_refusal,
    dispute_refusal,
    refund_due_date,
)
from brokerflow.payroll.rules import money

SYSTEM = "system"  # proposes the refunds the rule makes due
WAITING, SIGNING, APPROVED = "waiting", "signing", "approved"
REJECTED, RETURNED = "rejected", "returned"
UNDER_WAY = (WAITING, SIGNING)  # still in its chain
FINAL = (APPROVED, REJECTED, RETURNED)
MAX_TEXT_CHARS = 2_000
ZERO = Decimal("0")


def request_key(movement_id: int) -> str:
    """The approval engine's key of a movement."""
    return f"risk-fund:{movement_id}"


def dispute_key(dispute: ClientDispute) -> str:
    return f"dispute:{dispute.branch}:{dispute.id}"


def _text(value: str, *, column: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"a text of 1-{MAX_TEXT_CHARS} characters is required", column=column)
    return text


# --------------------------------------------------------------------------- balances


@dataclass(frozen=True)
class Balance:
    """A CM's risk fund as the database knows it."""

    cm_id: str
    month: str  # of the latest carried state
    balance: Decimal  # carried out of that month
    leave_date: date | None
    pending_deductions: Decimal  # under way or approved, not applied yet
    pending_refund: int | None  # a refund under way or approved, not applied yet
    available: Decimal  # what a new deduction may take

    @property
    def due_date(self) -> date | None:
        return refund_due_date(self.leave_date) if self.leave_date else None


def latest_carry(session: Session, *, branch: str, cm_id: str) -> PayrollCarry | None:
    """The CM's latest carried state in ``branch`` (None: never closed there)."""
    return session.exec(select(PayrollCarry).where(
        PayrollCarry.branch == branch, PayrollCarry.cm_id == cm_id)
        .order_by(col(PayrollCarry.month).desc())).first()


def _pending(session: Session, *, branch: str, cm_id: str) -> list[RiskFundMovement]:
    """Movements under way, or approved and not applied by a closing yet."""
    return list(session.exec(select(RiskFundMovement).where(
        RiskFundMovement.branch == branch, RiskFundMovement.cm_id == cm_id,
        col(RiskFundMovement.status).in_((*UNDER_WAY, APPROVED)),
        RiskFundMovement.applied_month == "").order_by(col(RiskFundMovement.id))))


def balance_of(session: Session, *, branch: str, cm_id: str) -> Balance | None:
    """The CM's balance, leave date and what is pending (None: no carried state)."""
    carry = latest_carry(session, branch=branch, cm_id=cm_id)
    if carry is None:
        return None
    pending = _pending(session, branch=branch, cm_id=cm_id)
    deductions = sum((Decimal(m.amount) for m in pending if m.kind == DEDUCTION), ZERO)
    refund = next((m.id for m in pending if m.kind == REFUND), None)
    balance = Decimal(carry.risk_fund_balance)
    available = ZERO if refund is not None else max(ZERO, balance - deductions)
    return Balance(cm_id=cm_id, month=carry.month, balance=money(balance),
                   leave_date=carry.leave_date, pending_deductions=money(deductions),
                   pending_refund=refund, available=money(available))


# --------------------------------------------------------------------------- movements


def propose_deduction(session: Session, *, branch: str, cm_id: str, cause: str | None,
                      amount: str, reason: str, actor: UserView) -> RiskFundMovement:
    """Record a deduction the branch manager proposes (status ``waiting``), audited: one of
    the five causes, at most the available balance.  AccessDenied for anyone but the
    branch's branch manager, BadInput (naming the option) for bad input; nothing is written
    then."""
    refusal = deduction_refusal(actor, branch=branch)
    if refusal is not None:
        raise AccessDenied(f"{actor.user_id} may not propose a risk-fund deduction: {refusal}")
    found = balance_of(session, branch=branch, cm_id=cm_id)
    if found is None:
        raise BadInput(f"{cm_id} has no risk-fund balance in branch {branch} (no closing "
                       "carried one)", column="--cm")
    if found.pending_refund is not None:
        raise BadInput(f"{cm_id}'s balance is being refunded (movement "
                       f"{found.pending_refund})", column="--cm")
    key, value = check_deduction(cause=cause, amount=amount, available=found.available)
    text = _text(reason, column="--reason")
    movement = RiskFundMovement(branch=branch, cm_id=cm_id, kind=DEDUCTION, cause=key,
                                amount=f"{value:.2f}", reason=text, proposed_by=actor.user_id)
    session.add(movement)
    session.flush()
    assert movement.id is not None
    append_audit(session, actor_id=actor.user_id, action="risk-fund-deduction-proposed",
                 request_key=request_key(movement.id),
                 details={"branch": branch, "cm": cm_id, "cause": key,
                          "amount": movement.amount, "reason": text,
                          "balance": f"{found.balance:.2f}",
                          "available": f"{found.available:.2f}"})
    return movement


@dataclass(frozen=True)
class DueRefund:
    """A refund the rule makes due: the whole balance of a CM who left 6 months ago."""

    cm_id: str
    name: str
    balance: Decimal
    leave_date: date
    due_date: date


def refund_refusal(session: Session, *, branch: str, cm_id: str, today: date) -> str | None:
    """None when ``cm_id``'s refund is due on ``today``; else why not."""
    found = balance_of(session, branch=branch, cm_id=cm_id)
    if found is None:
        return f"{cm_id} has no risk-fund balance in branch {branch}"
    if found.leave_date is None or found.due_date is None:
        return f"{cm_id} has not left (no leave date in the closing of {found.month})"
    if found.balance <= 0:
        return f"{cm_id}'s risk-fund balance is {found.balance:.2f}: nothing to refund"
    if found.due_date > today:
        return (f"{cm_id} left on {found.leave_date}: the refund is due on {found.due_date}, "
                f"6 months later")
    if found.pending_refund is not None:
        return f"{cm_id}'s refund is under way or approved (movement {found.pending_refund})"
    if found.pending_deductions > 0:
        return f"{cm_id} has a deduction under way: the refund waits until it is settled"
    dispute = open_disputes(session, branch=branch, cm_id=cm_id)
    if dispute:
        return (f"{cm_id} has an open client {dispute[0].kind} (#{dispute[0].id}): no refund "
                "until it is cleared")
    return None


def due_refunds(session: Session, *, branch: str, today: date) -> list[DueRefund]:
    """Every CM of ``branch`` whose refund is due on ``today``: left, balance above 0, 6
    months passed, no open dispute or incident, no refund or deduction pending."""
    carried = session.exec(select(PayrollCarry.cm_id).where(
        PayrollCarry.branch == branch, col(PayrollCarry.leave_date).is_not(None))).all()
    due = []
    for cm_id in sorted(set(carried)):
        if refund_refusal(session, branch=branch, cm_id=cm_id, today=today) is not None:
            continue
        found = balance_of(session, branch=branch, cm_id=cm_id)
        assert found is not None and found.leave_date and found.due_date
        due.append(DueRefund(cm_id=cm_id, name=cm_name(session, branch=branch, cm_id=cm_id),
                             balance=found.balance, leave_date=found.leave_date,
                             due_date=found.due_date))
    return due


def create_refund(session: Session, *, branch: str, cm_id: str, today: date,
                  started_by: str = SYSTEM) -> RiskFundMovement:
    """A refund of the CM's whole balance (status ``waiting``, proposed by the rule), audited
    with who started it; BadInput naming ``--cm`` when it is not due (not left, not 6
    months yet, an open dispute, one pending)."""
    refusal = refund_refusal(session, branch=branch, cm_id=cm_id, today=today)
    if refusal is not None:
        raise BadInput(refusal, column="--cm")
    found = balance_of(session, branch=branch, cm_id=cm_id)
    assert found is not None and found.leave_date and found.due_date
    movement = RiskFundMovement(
        branch=branch, cm_id=cm_id, kind=REFUND, amount=f"{found.balance:.2f}",
        reason=(f"离职满6个月（离职日期 {found.leave_date}，应退日期 {found.due_date}），"
                "无客户纠纷或其它责任事故，风险基金全额退还（第二十五条）"),
        leave_date=found.leave_date, due_date=found.due_date, proposed_by=SYSTEM)
    session.add(movement)
    session.flush()
    assert movement.id is not None
    append_audit(session, actor_id=started_by, action="risk-fund-refund-proposed",
                 request_key=request_key(movement.id),
                 details={"branch": branch, "cm": cm_id, "amount": movement.amount,
                          "leave_date": str(found.leave_date), "due_date": str(found.due_date),
                          "as_of": str(today)})
    return movement


def create_refunds(session: Session, *, branch: str, today: date,
                   started_by: str = SYSTEM) -> list[RiskFundMovement]:
    """A refund for every CM ``due_refunds`` lists."""
    return [create_refund(session, branch=branch, cm_id=due.cm_id, today=today,
                          started_by=started_by)
            for due in due_refunds(session, branch=branch, today=today)]


def get_movement(session: Session, *, movement_id: int) -> RiskFundMovement:
    movement = session.get(RiskFundMovement, movement_id)
    if movement is None:
        raise NotFound(f"no risk-fund movement {movement_id}")
    return movement


def list_movements(session: Session, *, branch: str,
                   cm_id: str | None = None) -> list[RiskFundMovement]:
    """A branch's movements (one CM's with ``cm_id``), oldest first."""
    statement = select(RiskFundMovement).where(RiskFundMovement.branch == branch)
    if cm_id:
        statement = statement.where(RiskFundMovement.cm_id == cm_id)
    return list(session.exec(statement.order_by(col(RiskFundMovement.id))))


def set_movement_status(session: Session, *, movement: RiskFundMovement, status: str,
                        rfd_serial: str = "") -> None:
    movement.status = status
    if rfd_serial:
        movement.rfd_serial = rfd_serial
    movement.updated_at = utcnow()
    session.add(movement)


# --------------------------------------------------------------------------- the closing


def movements_for_closing(session: Session, *, branch: str, month: str) -> list[Movement]:
    """Approved movements the closing of ``month`` applies (not yet applied, or applied by an
    earlier revision of the same month)."""
    rows = session.exec(select(RiskFundMovement).where(
        RiskFundMovement.branch == branch, RiskFundMovement.status == APPROVED,
        col(RiskFundMovement.applied_month).in_(("", month)))
        .order_by(col(RiskFundMovement.id)))
    return [Movement(id=m.id, cm_id=m.cm_id, kind=m.kind, amount=Decimal(m.amount))
            for m in rows if m.id is not None]


def mark_applied(session: Session, *, branch: str, month: str,
                 movements: list[Movement]) -> None:
    """Record that the closing of ``month`` applied ``movements`` (a movement an earlier
    revision of the month applied but this one did not is pending again)."""
    ids = {m.id for m in movements}
    for row in session.exec(select(RiskFundMovement).where(
            RiskFundMovement.branch == branch,
            (col(RiskFundMovement.applied_month) == month) | col(RiskFundMovement.id).in_(ids))):
        wanted = month if row.id in ids else ""
        if row.applied_month != wanted:
            row.applied_month = wanted
            row.updated_at = utcnow()
            session.add(row)


def cm_name(session: Session, *, branch: str, cm_id: str) -> str:
    """The CM's name on their latest pay line in ``branch``, else on the roster ("" if
    neither knows it)."""
    record = session.exec(
        select(PayrollLineRecord).join(PayrollRun, col(PayrollRun.id) == col(
            PayrollLineRecord.run_id))
        .where(PayrollRun.branch == branch, PayrollLineRecord.cm_id == cm_id)
        .order_by(col(PayrollRun.month).desc(), col(PayrollRun.revision).desc())).first()
    if record is not None:
        name = json.loads(record.line).get("name")
        if name:
            return str(name)
    user = session.get(User, cm_id)
    return user.name if user is not None else ""


def movement_rows(session: Session, *, branch: str, month: str) -> list[dict[str, Any]]:
    """The movements applied by the closing of ``month``, as PAY lists them."""
    rows = session.exec(select(RiskFundMovement).where(
        RiskFundMovement.branch == branch, RiskFundMovement.applied_month == month)
        .order_by(col(RiskFundMovement.id)))
    return [{"cm_id": m.cm_id, "name": cm_name(session, branch=branch, cm_id=m.cm_id),
             "kind": m.kind, "kind_label": KIND_LABELS.get(m.kind, m.kind),
             "cause": m.cause, "cause_label": cause_label(m.cause), "amount": m.amount,
             "rfd_serial": m.rfd_serial} for m in rows]


# --------------------------------------------------------------------------- disputes


def open_dispute(session: Session, *, branch: str, cm_id: str, kind: str, description: str,
                 actor: UserView) -> ClientDispute:
    """Record a client dispute or incident against ``cm_id`` (the branch's trading dept
    manager); while open it blocks the CM's refund."""
    refusal = dispute_refusal(actor, branch=branch)
    if refusal is not None:
        raise AccessDenied(f"{actor.user_id} may not record a client dispute: {refusal}")
    if kind not in DISPUTE_KINDS:
        raise BadInput(f"kind must be one of {', '.join(DISPUTE_KINDS)}", column="--kind")
    text = _text(description, column="--description")
    known = session.get(User, cm_id)
    if (known is None or known.branch != branch) and latest_carry(
            session, branch=branch, cm_id=cm_id) is None:
        raise BadInput(f"{cm_id} is not a CM of branch {branch}", column="--cm")
    dispute = ClientDispute(branch=branch, cm_id=cm_id, kind=kind, description=text,
                            opened_by=actor.user_id)
    session.add(dispute)
    session.flush()
    append_audit(session, actor_id=actor.user_id, action="client-dispute-opened",
                 request_key=dispute_key(dispute),
                 details={"cm": cm_id, "kind": kind, "description": text})
    return dispute


def clear_dispute(session: Session, *, dispute_id: int, note: str,
                  actor: UserView) -> ClientDispute:
    """Clear an open dispute with a note (the trading dept manager of its branch)."""
    dispute = session.get(ClientDispute, dispute_id)
    if dispute is None:
        raise NotFound(f"no client dispute #{dispute_id}")
    refusal = dispute_refusal(actor, branch=dispute.branch)
    if refusal is not None:
        raise AccessDenied(f"{actor.user_id} may not clear dispute #{dispute_id}: {refusal}")
    if dispute.status != "open":
        raise BadInput(f"dispute #{dispute_id} is {dispute.status}, not open", column="ID")
    text = _text(note, column="--note")
    dispute.status, dispute.cleared_by, dispute.cleared_at = "cleared", actor.user_id, utcnow()
    dispute.clearing_note = text
    session.add(dispute)
    append_audit(session, actor_id=actor.user_id, action="client-dispute-cleared",
                 request_key=dispute_key(dispute), details={"cm": dispute.cm_id, "note": text})
    return dispute


def open_disputes(session: Session, *, branch: str, cm_id: str) -> list[ClientDispute]:
    return list_disputes(session, branch=branch, cm_id=cm_id, status="open")


def list_disputes(session: Session, *, branch: str, cm_id: str | None = None,
                  status: str | None = None) -> list[ClientDispute]:
    """A branch's disputes and incidents (one CM's, one status), oldest first."""
    statement = select(ClientDispute).where(ClientDispute.branch == branch)
    if cm_id:
        statement = statement.where(ClientDispute.cm_id == cm_id)
    if status:
        statement = statement.where(ClientDispute.status == status)
    return list(session.exec(statement.order_by(col(ClientDispute.id))))
