"""What the business report (RPT, ``brokerflow.payroll.business_report``) reads from the
database: a closing's lines, last month's closed lines, the level changes of a month and the
closed months of a half year or year.

A level change belongs to the month it takes **effect** in (``LevelChange.effective_month``,
the month after its approval, SPEC §8.3), not the month it was approved in: the report then
lists exactly the changes whose new title that month's pay used, each once, with its LVL.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.models import LevelChange, PayrollRun, User
from brokerflow.kernel.vocabulary import ClosingStatus, LevelChangeStatus
from brokerflow.payroll.business_report import (
    MonthReport,
    Period,
    PeriodReport,
    StaffChange,
    build_month_report,
    sum_reports,
)
from brokerflow.payroll.records import run_lines

Line = dict[str, object]


def closed_run(session: Session, *, branch: str, month: str) -> PayrollRun | None:
    """The latest closed revision of ``branch``'s ``month`` (None: the month is not closed)."""
    return session.exec(
        select(PayrollRun).where(PayrollRun.branch == branch, PayrollRun.month == month,
                                 PayrollRun.status == ClosingStatus.CLOSED)
        .order_by(col(PayrollRun.revision).desc())).first()


def previous_lines(session: Session, *, branch: str, month: str) -> list[Line] | None:
    """The lines of the latest closed revision of the month before ``month`` (None: not
    closed, the report shows — for last month)."""
    run = closed_run(session, branch=branch, month=str(Month.parse(month).minus(1)))
    return run_lines(session, run_id=run.id) if run is not None and run.id is not None else None


def level_changes_in(session: Session, *, branch: str,
                     months: Iterable[str]) -> dict[str, list[StaffChange]]:
    """Approved level changes effective in each of ``months`` (by month), with the CM's
    roster name and the LVL serial."""
    wanted = sorted(set(months))
    rows = session.exec(select(LevelChange).where(
        LevelChange.branch == branch, LevelChange.status == LevelChangeStatus.APPROVED,
        col(LevelChange.effective_month).in_(wanted)).order_by(col(LevelChange.id))).all()
    ids = sorted({r.cm_id for r in rows})
    names = dict(session.exec(select(User.user_id, User.name).where(
        col(User.user_id).in_(ids))).all()) if ids else {}
    found: dict[str, list[StaffChange]] = {m: [] for m in wanted}
    for row in rows:
        found[row.effective_month].append(StaffChange(
            month=row.effective_month, cm_id=row.cm_id, name=names.get(row.cm_id, ""),
            date=row.effective_month, kind=row.kind, from_title=row.from_title,
            to_title=row.to_title, lvl_serial=row.lvl_serial))
    return found


def _policy(run: PayrollRun) -> str:
    if run.policy_version:
        return f"第 {run.policy_version} 版（{run.policy_filing}）"
    return run.policy_note


def month_report(session: Session, *, run: PayrollRun, pas_serial: str = "",
                 level_changes: list[StaffChange] | None = None) -> MonthReport:
    """The report of ``run``'s month: its lines against last month's closed lines, the level
    changes effective in the month; ``pas_serial`` defaults to the run's signed serial."""
    assert run.id is not None
    if level_changes is None:
        level_changes = level_changes_in(session, branch=run.branch,
                                         months=[run.month])[run.month]
    return build_month_report(
        branch=run.branch, month=run.month, lines=run_lines(session, run_id=run.id),
        previous_lines=previous_lines(session, branch=run.branch, month=run.month),
        level_changes=level_changes, revision=run.revision, pay_serial=run.pay_serial,
        pas_serial=pas_serial or run.signed_serial, rpt_serial=run.rpt_serial,
        policy=_policy(run))


def closed_month_report(session: Session, *, branch: str, month: str) -> MonthReport:
    """The report of ``branch``'s closed ``month``; NotFound when it is not closed."""
    run = closed_run(session, branch=branch, month=month)
    if run is None:
        raise NotFound(f"{branch} {month} is not closed: no business report yet")
    return month_report(session, run=run)


def period_report(session: Session, *, branch: str, period: Period) -> PeriodReport:
    """The half year's or year's report from the closed months of ``period`` (a month not
    closed is named missing)."""
    changes = level_changes_in(session, branch=branch, months=period.months)
    reports = []
    for month in period.months:
        run = closed_run(session, branch=branch, month=month)
        if run is not None:
            reports.append(month_report(session, run=run, level_changes=changes[month]))
    return sum_reports(branch, period, reports)
