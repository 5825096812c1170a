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
