"""The monthly business report (营业部业务月报, seed 002 第六条, 第二十二条; SPEC §8.3) as a
step of the closing: once the signed report (PAS) is archived, the month's RPT is archived
(per team accounts, new value, net revenue against last month, staff changes, payroll totals,
the PAS serial); a June closing also archives the half year's report, a December closing the
second half year's and the year's, summing the closed months (the others named missing).

Re-running never makes a second document: the run keeps its ``rpt_serial``, and
``archive_step`` returns the existing serial of a subject key and revision.  A half year's or
year's report has the revision of the closing that archived it, so a month closed again after
a correction (which reopens the later months) gets a new one.
"""

from __future__ import annotations

from typing import Any

from brokerflow.archive.index import find_live_record, mark_superseded
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.archive_document import archive_step
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import PayrollRun
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.vocabulary import SerialStatus
from brokerflow.payroll.business_report import (
    MonthReport,
    PeriodReport,
    document_data,
    periods_ending,
)
from brokerflow.payroll.report_records import month_report, period_report

REPORT_ACTION = "report-archived"


def report_key(branch: str, period: str) -> str:
    """The subject key of a business report: ``report:SZ01:2026-10``, ``report:SZ01:2026H1``."""
    return f"report:{branch}:{period}"


def report_actor(archive: Archive, run: PayrollRun) -> UserView:
    """Whom the reports are archived as: who started the closing, or the system (as the
    closing archives its PAY and PAS)."""
    with new_session(archive.engine) as session:
        view = get_user_view(session, run.started_by)
    return view or UserView(user_id=run.started_by, name="系统 (定时任务 scheduled)",
                            branch=run.branch, team="", supervisor_id=None, roles=frozenset())


def _stored(archive: Archive, key: str, revision: int) -> str | None:
    """The serial already stored for ``key`` and ``revision`` (None: none yet)."""
    with new_session(archive.engine) as session:
        record = find_live_record(session, doc_type="RPT", subject_key=key, revision=revision)
    return record.serial if record is not None and record.status == SerialStatus.STORED else None


def _archive(archive: Archive, run: PayrollRun, report: MonthReport | PeriodReport,
             key: str, actor: UserView) -> str:
    data: dict[str, Any] = document_data(report)
    spec = DocumentSpec(branch=run.branch, doc_type="RPT", subject=data["subject"],
                        subject_key=key, revision=run.revision, month=run.month,
                        source=f"business report {run.branch} {key.rsplit(':', 1)[-1]}")
    serial = archive_step(archive, spec, data, actor=actor)
    with new_session(archive.engine) as session:
        mark_superseded(session, subject_keys=[key], below_revision=run.revision)
        if isinstance(report, MonthReport):
            current = session.get(PayrollRun, run.id)
            assert current is not None
            current.rpt_serial = serial
            session.add(current)
            details: dict[str, Any] = {"revision": run.revision, "rpt": serial,
                                       "pas": report.pas_serial}
        else:
            details = {"revision": run.revision, "rpt": serial,
                       "period": report.period.text,
                       "months": [r.month for r in report.months],
                       "pas": [r.pas_serial for r in report.months],
                       "missing": list(report.missing)}
        append_audit(session, actor_id=actor.user_id, action=REPORT_ACTION, request_key=key,
                     details=details)
        session.commit()
    return serial


def archive_business_reports(archive: Archive, run: PayrollRun, *, pas_serial: str) -> list[str]:
    """Archive the month's RPT (and the half-year/year report when the month ends one);
    returns their serials, the month's first.  Archiving again returns the same serials."""
    with new_session(archive.engine) as session:
        current = session.get(PayrollRun, run.id)
        if current is None:
            raise NotFound(f"no closing run {run.id} of {run.branch} {run.month}")
        report = None if current.rpt_serial else month_report(session, run=current,
                                                              pas_serial=pas_serial)
    actor = report_actor(archive, current)
    serials = [current.rpt_serial if report is None else
               _archive(archive, current, report, report_key(run.branch, run.month), actor)]
    for period in periods_ending(run.month):
        key = report_key(run.branch, period.text)
        stored = _stored(archive, key, current.revision)
        if stored is None:
            with new_session(archive.engine) as session:
                summed = period_report(session, branch=run.branch, period=period)
            stored = _archive(archive, current, summed, key, actor)
        serials.append(stored)
    return serials
