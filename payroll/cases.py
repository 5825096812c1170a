"""Malicious-account investigations (seed 001 第二十七条4) in the database.

The trading dept manager opens a case on a CM of their branch; while it is open, or concluded
but not yet signed off, the closing withholds the CM's fixed pay (SPEC §8.1).  The conclusion
(confirmed accounts, or cleared) is signed off by the branch manager; confirmed accounts are
fined in the closing of the month the conclusion names, and the withheld pay is released.
Keyword-only functions taking a ``Session``; the caller commits.  Every step is audited.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import StaffCase

OPENING_ROLE = "trading_manager"
SIGN_OFF_ROLE = "branch_manager"
WITHHOLDING = ("open", "concluding")  # statuses during which fixed pay is withheld
OUTCOMES = ("confirmed", "cleared")


def case_key(case: StaffCase) -> str:
    return f"case:{case.branch}:{case.id}"


def case_refusal(actor: UserView, *, branch: str, role: str) -> str | None:
    """None when ``actor`` holds ``role`` in ``branch``; else why not.  Pure."""
    if actor.branch == branch and role in actor.roles:
        return None
    return f"this needs the role {role} in branch {branch}"


def open_case(session: Session, *, branch: str, cm_id: str, actor: UserView,
              reason: str) -> StaffCase:
    """Open an investigation on ``cm_id`` (permission checked by the caller)."""
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    existing = session.exec(select(StaffCase).where(
        StaffCase.branch == branch, StaffCase.cm_id == cm_id,
        col(StaffCase.status).in_(WITHHOLDING))).first()
    if existing is not None:
        raise BadInput(f"{cm_id} already has an open case (#{existing.id})", column="--cm")
    case = StaffCase(branch=branch, cm_id=cm_id, reason=reason.strip(),
                     opened_by=actor.user_id)
    session.add(case)
    session.flush()
    append_audit(session, actor_id=actor.user_id, action="case-opened",
                 request_key=case_key(case), details={"cm": cm_id, "reason": case.reason})
    return case


def get_case(session: Session, *, case_id: int, branch: str | None = None) -> StaffCase:
    case = session.get(StaffCase, case_id)
    if case is None or (branch is not None and case.branch != branch):
        raise NotFound(f"no case #{case_id}")
    return case


def conclude_case(session: Session, *, case: StaffCase, actor: UserView, outcome: str,
                  accounts: int, month: str, reason: str) -> StaffCase:
    """The investigator's conclusion; pay stays withheld until the branch manager signs off."""
    if case.status != "open":
        raise BadInput(f"case #{case.id} is {case.status}, not open", column="ID")
    if outcome not in OUTCOMES:
        raise BadInput(f"outcome must be one of {', '.join(OUTCOMES)}", column="--outcome")
    if outcome == "confirmed" and accounts < 1:
        raise BadInput("a confirmed case names at least one account", column="--accounts")
    if outcome == "cleared" and accounts:
        raise BadInput("a cleared case has no confirmed accounts", column="--accounts")
    try:
        Month.parse(month)
    except ValueError:
        raise BadInput("month must be YYYY-MM", column="--month") from None
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    case.status, case.outcome, case.confirmed_accounts = "concluding", outcome, accounts
    case.fine_month, case.concluded_by = month, actor.user_id
    session.add(case)
    append_audit(session, actor_id=actor.user_id, action="case-concluded",
                 request_key=case_key(case),
                 details={"outcome": outcome, "accounts": accounts, "month": month,
                          "reason": reason.strip()})
    return case


def sign_off_case(session: Session, *, case: StaffCase, actor: UserView,
                  opinion: str) -> StaffCase:
    """The branch manager signs the conclusion off: the case closes (nobody signs both)."""
    if case.status != "concluding":
        raise BadInput(f"case #{case.id} is {case.status}: only a concluded case is signed off",
                       column="ID")
    if actor.user_id in (case.concluded_by, case.opened_by):
        raise BadInput("the sign-off must come from someone other than the investigator",
                       column="--as")
    case.status = "closed"
    case.concluded_by = f"{case.concluded_by};{actor.user_id}"
    case.concluded_at = utcnow()
    session.add(case)
    append_audit(session, actor_id=actor.user_id, action="case-signed-off",
                 request_key=case_key(case), details={"opinion": opinion.strip()})
    return case


def investigation_figures(session: Session, *, branch: str, month: str
                          ) -> dict[str, tuple[bool, int]]:
    """Per CM: (under investigation, accounts confirmed for ``month``'s closing)."""
    figures: dict[str, tuple[bool, int]] = {}
    for case in session.exec(select(StaffCase).where(StaffCase.branch == branch)):
        held, confirmed = figures.get(case.cm_id, (False, 0))
        if case.status in WITHHOLDING:
            held = True
        elif case.status == "closed" and case.fine_month == month:
            confirmed += case.confirmed_accounts
        figures[case.cm_id] = (held, confirmed)
    return {cm: value for cm, value in figures.items() if value != (False, 0)}


def cases_of(session: Session, *, branch: str, cm_id: str) -> list[StaffCase]:
    return list(session.exec(select(StaffCase).where(
        StaffCase.branch == branch, StaffCase.cm_id == cm_id).order_by(col(StaffCase.id))))
