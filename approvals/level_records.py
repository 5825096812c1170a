"""Level changes, titles and HR notices in the database (SPEC §8.3).

A title (聘任职级) is a ``TitleRecord`` from its effective month on, never edited: an approved
level change adds one, effective the month after approval.  The closing proposes demotions
(``propose_demotions``) from its lines (its notices: ``brokerflow.payroll.notices``); the quarterly
evaluation proposes conversions to sales CM (``propose_cm_conversions``).
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from brokerflow.approvals.level_changes import (
    CLOSING_DEMOTION_FLAGS,
    DEMOTION,
    DEMOTION_REASONS,
    chain_for,
    check_level,
    demotion_reason,
    demotion_target,
    effective_month,
)
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.models import (
    LevelChange,
    PayrollLineRecord,
    PayrollRun,
    TitleRecord,
    User,
)
from brokerflow.kernel.vocabulary import LevelChangeStatus

SYSTEM = "system"  # who proposes what the closing or the evaluation found
#: A change still under way: a second one for the same CM waits until it ends.
OPEN_STATUSES = (LevelChangeStatus.PROPOSED, LevelChangeStatus.WAITING, LevelChangeStatus.SIGNING)
MAX_REASON_CHARS = 2_000


def request_key(change_id: int) -> str:
    return f"level:{change_id}"


def _month(month: str, *, column: str = "--month") -> str:
    try:
        return str(Month.parse(month))
    except ValueError:
        raise BadInput(f"month {month!r} must be YYYY-MM", column=column) from None


def current_title(session: Session, *, branch: str, cm_id: str, month: str) -> str | None:
    """The CM's title for ``month``'s closing: the latest title effective then (None: none)."""
    record = session.exec(
        select(TitleRecord).where(TitleRecord.branch == branch, TitleRecord.cm_id == cm_id,
                                  TitleRecord.effective_month <= _month(month))
        .order_by(col(TitleRecord.effective_month).desc(), col(TitleRecord.id).desc())
    ).first()
    return record.title if record else None


def title_history(session: Session, *, branch: str, cm_id: str) -> list[TitleRecord]:
    """Every title the CM was given, oldest first."""
    return list(session.exec(
        select(TitleRecord).where(TitleRecord.branch == branch, TitleRecord.cm_id == cm_id)
        .order_by(col(TitleRecord.effective_month), col(TitleRecord.id))))


def reporting_line(session: Session, *, user_id: str) -> list[str]:
    """The managers above ``user_id``, nearest first (supervisor, their supervisor, ...)."""
    line: list[str] = []
    user = session.get(User, user_id)
    while user is not None and user.supervisor_id and user.supervisor_id not in line:
        line.append(user.supervisor_id)
        user = session.get(User, user.supervisor_id)
    return line


def latest_closing_line(session: Session, *, branch: str,
                        cm_id: str) -> tuple[str, dict[str, Any]] | None:
    """(month, line) of the CM in the branch's latest closing (its latest revision): the
    SPEC §6.3/§8.1 line with ``flags``, ``asset_level``, ``title``; None when it has none."""
    run = session.exec(select(PayrollRun).where(PayrollRun.branch == branch)
                       .order_by(col(PayrollRun.month).desc(),
                                 col(PayrollRun.revision).desc())).first()
    if run is None:
        return None
    line = _line_of(session, run=run, cm_id=cm_id)
    return (run.month, line) if line is not None else None


def closing_line(session: Session, *, branch: str, cm_id: str,
                 month: str) -> dict[str, Any] | None:
    """The CM's line in the latest revision of ``branch``'s ``month`` closing (None: none)."""
    run = session.exec(select(PayrollRun).where(PayrollRun.branch == branch,
                                                PayrollRun.month == month)
                       .order_by(col(PayrollRun.revision).desc())).first()
    return _line_of(session, run=run, cm_id=cm_id) if run is not None else None


def _line_of(session: Session, *, run: PayrollRun, cm_id: str) -> dict[str, Any] | None:
    record = session.exec(select(PayrollLineRecord).where(
        PayrollLineRecord.run_id == run.id, PayrollLineRecord.cm_id == cm_id)).first()
    if record is None:
        return None
    line: dict[str, Any] = json.loads(record.line)
    return line


def open_changes(session: Session, *, branch: str, cm_id: str) -> list[LevelChange]:
    """The CM's level changes still under way."""
    return list(session.exec(select(LevelChange).where(
        LevelChange.branch == branch, LevelChange.cm_id == cm_id,
        col(LevelChange.status).in_(OPEN_STATUSES)).order_by(col(LevelChange.id))))


def create_level_change(
    session: Session, *, branch: str, cm_id: str, kind: str, from_title: str | None,
    to_title: str, month: str, reason: str, proposed_by: str,
    status: str = LevelChangeStatus.WAITING,
) -> LevelChange:
    """Record a level change (an application, or a proposal of the system), audited.  Who
    may apply, and that the CM is on the roster, the caller checks."""
    chain_for(kind)
    check_level(to_title)
    if from_title:
        check_level(from_title, column="from_title")
    text = reason.strip()
    if not text or len(text) > MAX_REASON_CHARS:
        raise BadInput(f"a reason of 1-{MAX_REASON_CHARS} characters is required",
                       column="--reason")
    change = LevelChange(branch=branch, cm_id=cm_id, kind=kind, from_title=from_title or "",
                         to_title=to_title, month=_month(month), reason=text,
                         proposed_by=proposed_by, status=status)
    session.add(change)
    session.flush()
    assert change.id is not None
    append_audit(session, actor_id=proposed_by, action="level-change-proposed",
                 request_key=request_key(change.id),
                 details={"branch": branch, "cm": cm_id, "kind": kind,
                          "from": change.from_title, "to": to_title, "month": change.month,
                          "reason": text, "status": status})
    return change


def get_level_change(session: Session, *, change_id: int) -> LevelChange:
    change = session.get(LevelChange, change_id)
    if change is None:
        raise NotFound(f"no level change {change_id}")
    return change


def list_level_changes(session: Session, *, branch: str,
                       status: str | None = None) -> list[LevelChange]:
    statement = select(LevelChange).where(LevelChange.branch == branch)
    if status:
        statement = statement.where(LevelChange.status == status)
    return list(session.exec(statement.order_by(col(LevelChange.id))))


def set_change_status(session: Session, *, change: LevelChange, status: str) -> None:
    change.status = status
    change.updated_at = utcnow()
    session.add(change)


def record_title(session: Session, *, change: LevelChange, approved_month: str,
                 approved_by: Sequence[str], document: str) -> TitleRecord:
    """The title an approved change gives, effective the month after ``approved_month``
    (once per change: a second call returns the first record)."""
    assert change.id is not None
    key = request_key(change.id)
    existing = session.exec(select(TitleRecord).where(TitleRecord.request_key == key)).first()
    if existing is not None:
        return existing
    record = TitleRecord(branch=change.branch, cm_id=change.cm_id, title=change.to_title,
                         effective_month=effective_month(approved_month), kind=change.kind,
                         approved_by=";".join(dict.fromkeys(approved_by))[:256],
                         document=document, request_key=key)
    session.add(record)
    return record


def _proposed(session: Session, *, branch: str, cm_id: str, month: str,
              conversion: bool) -> bool:
    """Whether the system proposed a demotion of this CM for this month already (a closing's,
    or an evaluation's conversion to sales CM)."""
    for change in session.exec(select(LevelChange).where(
            LevelChange.branch == branch, LevelChange.cm_id == cm_id,
            LevelChange.month == month, LevelChange.kind == DEMOTION,
            LevelChange.proposed_by == SYSTEM)):
        if change.reason.startswith("convert_to_cm") == conversion:
            return True
    return False


def propose_demotions(session: Session, *, branch: str, month: str,
                      lines: Sequence[Mapping[str, Any]]) -> list[LevelChange]:
    """A proposed demotion (status ``proposed``, by the system) for every closing line
    flagged ``demotion_due`` or ``score_demotion_due``: from the line's title (its level when
    it has none) to its ``title_next``.  Once per branch, CM and month: a re-run proposes
    nothing twice.  The new proposals; the branch manager starts their confirmation."""
    month = _month(month, column="month")
    created: list[LevelChange] = []
    for line in lines:
        flags = set(line.get("flags") or ())
        if flags.isdisjoint(CLOSING_DEMOTION_FLAGS):
            continue
        cm_id = str(line["cm_id"])
        from_title = line.get("title") or line.get("level")
        to_title = demotion_target(from_title=from_title, to_title=line.get("title_next"))
        if to_title is None or _proposed(session, branch=branch, cm_id=cm_id, month=month,
                                         conversion=False):
            continue
        created.append(create_level_change(
            session, branch=branch, cm_id=cm_id, kind=DEMOTION, from_title=from_title,
            to_title=to_title, month=month,
            reason=demotion_reason(flags & set(CLOSING_DEMOTION_FLAGS)), proposed_by=SYSTEM,
            status=LevelChangeStatus.PROPOSED))
    return created


def propose_cm_conversions(session: Session, *, branch: str, month: str,
                           results: Sequence[Mapping[str, Any]]) -> list[LevelChange]:
    """A proposed change (kind ``demotion``, reason ``convert_to_cm``) for every evaluation
    result (SPEC §8.2: ``evaluatee_id``, ``flags``) flagged ``convert_to_cm``: the regional
    manager becomes a sales CM from the month after approval, keeping the title they hold
    for ``month`` (none: ``to_title`` is the level they are paid at, from the closing line).
    Once per branch, person and month."""
    month = _month(month, column="month")
    created: list[LevelChange] = []
    for result in results:
        if "convert_to_cm" not in (result.get("flags") or ()):
            continue
        cm_id = str(result["evaluatee_id"])
        if _proposed(session, branch=branch, cm_id=cm_id, month=month, conversion=True):
            continue
        title = current_title(session, branch=branch, cm_id=cm_id, month=month)
        if title is None:
            line = closing_line(session, branch=branch, cm_id=cm_id, month=month) or {}
            title = line.get("title") or line.get("level")
        if not title:
            continue  # no level known: nothing the chain could record
        created.append(create_level_change(
            session, branch=branch, cm_id=cm_id, kind=DEMOTION, from_title=title,
            to_title=title, month=month,
            reason=f"convert_to_cm: {DEMOTION_REASONS['convert_to_cm']}", proposed_by=SYSTEM,
            status=LevelChangeStatus.PROPOSED))
    return created
