"""PSL (工资条, SPEC §9): once a closing is signed (PAS), one payslip per CM of the closing,
filed under that CM so that the archive's reading rules (SPEC §5) let them open it.

Every line item shows the formula it was computed by (stored with the line,
``payroll.workings``).  The payslips of a closing are archived as one batch; archiving again
returns the same serials (subject key per CM, revision of the closing), and a closing's new
revision supersedes every payslip of the earlier one (a CM it no longer pays included).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from brokerflow.archive.index import mark_superseded
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.confirmation_lists import archive_batch_step
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import ArchiveEntry, PayrollLineRecord, PayrollRun, User
from brokerflow.payroll.payslip import payslip_data, subject_key


def payslip_lines(session: Session, *, run_id: int) -> list[dict[str, Any]]:
    """The stored lines of a closing revision with their workings, by CM."""
    rows = session.exec(select(PayrollLineRecord).where(PayrollLineRecord.run_id == run_id)
                        .order_by(col(PayrollLineRecord.cm_id)))
    return [json.loads(r.line) for r in rows]


def archive_payslips(archive: Archive, run: PayrollRun, *, pas_serial: str,
                     actor: UserView) -> list[str]:
    """Archive the PSL of every CM of the signed closing ``run``; their serials (by CM).
    A CM not on the branch's roster gets a payslip filed without a CM (branch management
    and head office read it)."""
    assert run.id is not None
    with new_session(archive.engine) as session:
        lines = payslip_lines(session, run_id=run.id)
        on_roster = set(session.exec(select(User.user_id).where(User.branch == run.branch)))
    specs, documents = [], []
    for line in lines:
        cm_id = str(line["cm_id"])
        data = payslip_data(line, branch=run.branch, month=run.month, revision=run.revision,
                            pas_serial=pas_serial)
        documents.append(data)
        specs.append(DocumentSpec(
            branch=run.branch, doc_type="PSL", subject=data["subject"],
            subject_key=subject_key(run.branch, run.month, cm_id), revision=run.revision,
            cm_id=cm_id if cm_id in on_roster else None, month=run.month,
            source=f"payslip {run.branch} {run.month} {cm_id}"))
    if not specs:
        return []
    serials = archive_batch_step(archive, specs, documents, actor=actor)
    with new_session(archive.engine) as session:
        # every payslip of an earlier revision of this month: also those of a CM the new
        # revision no longer pays
        earlier = session.exec(select(ArchiveEntry.subject_key).where(
            ArchiveEntry.doc_type == "PSL", ArchiveEntry.branch == run.branch,
            ArchiveEntry.month == run.month, ArchiveEntry.revision < run.revision)).all()
        mark_superseded(session, subject_keys=sorted({*earlier, *(s.subject_key for s in specs)}),
                        below_revision=run.revision)
        session.commit()
    return serials
