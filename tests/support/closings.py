"""Close a month of SZ01 in-process through the real closing flow and sign-off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from brokerflow.archive.service import Archive
from brokerflow.flows.closing import monthly_closing
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import PayrollRun
from tests.support.chain_driver import ChainDriver
from tests.support.payroll_data import MONTH, POLICY

SIGN_OFF = ("ca1", "dm1", "bm1")  # chief accountant → deputy manager → branch manager


def close_month(archive: Archive, export: Path, month: str = MONTH, *,
                policy: Path | None = POLICY, **parameters: Any) -> PayrollRun:
    """Run the closing of ``month`` on ``export`` (CRM attribution column, development mode;
    ``policy=None`` uses the approved pay rules), sign it off, and return the closed run."""
    with new_session(archive.engine) as session:
        before = set(session.exec(select(PayrollRun.id)).all())

    def latest() -> PayrollRun | None:
        with new_session(archive.engine) as session:
            run = session.exec(select(PayrollRun).order_by(col(PayrollRun.id).desc())).first()
        return run if run is not None and run.id not in before else None

    if policy is not None:
        parameters["policy"] = str(policy)
    chain = ChainDriver(
        lambda: monthly_closing(branch="SZ01", month=month, data_dir=str(export),
                                wait="pause", poll_interval=0.1, attribution_source="crm",
                                **parameters),
        run_id=lambda: (r.flow_run_id if (r := latest()) else None),
        attempts=lambda: (r.form_attempts if (r := latest()) else 0),
    ).start()
    chain.wait_paused()
    for signer in SIGN_OFF:
        chain.sign(signer)
    assert chain.join().startswith("SZ01-PAS-")
    run = latest()
    assert run is not None and run.status == "closed"
    return run


def latest_run(archive: Archive, branch: str | None = None) -> PayrollRun | None:
    """The newest payroll run (of ``branch``, when given)."""
    with new_session(archive.engine) as session:
        query = select(PayrollRun)
        if branch is not None:
            query = query.where(PayrollRun.branch == branch)
        return session.exec(query.order_by(col(PayrollRun.id).desc())).first()


def start_closing(archive: Archive, *, branch: str = "SZ01", month: str = MONTH,
                  **parameters: Any) -> ChainDriver:
    """The closing flow of ``branch`` ``month`` with ``parameters``, started in a thread and
    waiting for its first signature (counted by the database's attributions unless
    ``attribution_source`` says otherwise)."""
    before = latest_run(archive, branch)
    before_id = before.id if before else 0

    def run_id() -> str | None:
        run = latest_run(archive, branch)
        return run.flow_run_id if run and run.id != before_id else None

    def attempts() -> int:
        run = latest_run(archive, branch)
        return run.form_attempts if run else 0

    driver = ChainDriver(
        lambda: monthly_closing(branch=branch, month=month, wait="pause", poll_interval=0.1,
                                **parameters),
        run_id=run_id, attempts=attempts,
    ).start()
    driver.wait_paused()
    return driver
