"""The company closing (SPEC §7) through work pool brokerflow with two workers: one
``monthly-closing-all`` run fans out a closing per roster branch under its concurrency limit;
a bad export and a missing one fail those branches only, with the reason; re-running the month
(while the sign-off waits, and after it) pays nobody twice."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from sqlmodel import col, select

from brokerflow.app.runs import start_deployment
from brokerflow.approvals.submission import send_form
from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import AuditEvent, PayrollCarry, PayrollLineRecord, PayrollRun
from brokerflow.kernel.settings import load_settings
from tests.support.paths import ROSTER_CSV
from tests.support.payroll_data import (
    MONTH,
    approve_pay_rules,
    client_row,
    staff_row,
    write_export,
)
from tests.support.reliability import assert_intact
from tests.support.services import wait_until
from tests.support.workers import Machines, company_set_up

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("development")]

#: Two more branches with a whole sign-off chain; GZ02 (sample roster) has no export at all.
EXTRA_USERS = [
    (f"{role[:2]}{b[:2].lower()}", f"{label} {b}", role, b, "", "", f"pw-{role[:2]}{b[:2].lower()}")
    for b in ("SH03", "BJ04")
    for role, label in (("chief_accountant", "主办会计"), ("deputy_manager", "副经理"),
                        ("branch_manager", "营业部经理"))
]
SIGNERS = {"SZ01": ("ca1", "dm1", "bm1"), "SH03": ("chsh", "desh", "brsh"),
           "BJ04": ("chbj", "debj", "brbj")}


@pytest.fixture
def machines(tmp_path: Path, env: dict[str, str], postgres_url: str, postgres_database: str,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Machines]:
    with company_set_up(tmp_path, env, postgres_url, postgres_database, monkeypatch) as running:
        yield running


@pytest.fixture
def company(machines: Machines, cli, tmp_path: Path) -> Archive:
    """The sample roster plus SH03 and BJ04; exports for SZ01, SH03 (good), BJ04 (a bad
    cell) and XX99 (no such branch) under crm/<branch>/<month>/; none for GZ02."""
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as handle:
        handle.write(ROSTER_CSV.read_text(encoding="utf-8"))
        csv.writer(handle).writerows(EXTRA_USERS)
    loaded = cli("roster", "load", str(roster))
    assert loaded.code == 0, loaded.err
    archive = open_archive(load_settings())
    for branch in ("SZ01", "SH03", "BJ04", "GZ02"):  # XX99 is not on the roster
        approve_pay_rules(archive.engine, branch=branch)
    for branch, assets in (("SZ01", "300000"), ("SH03", "120000"), ("BJ04", "十万"),
                           ("XX99", "1")):
        directory = write_export(
            tmp_path / "crm" / branch,
            staff=[staff_row(f"{branch}cm1", supervisor_id=f"{branch}sm1"),
                   staff_row(f"{branch}sm1", position="stationed")],
            clients=[client_row(f"{branch}c1", f"{branch}cm1", open_date="2026-10-03",
                                purchases="8000", assets=assets, gross_commission="900"),
                     client_row(f"{branch}c2", f"{branch}sm1", assets="500000")])
        for name in ("staff.csv", "clients.csv"):
            archive.put_input(f"crm/{branch}/{MONTH}/{name}", (directory / name).read_bytes(),
                              metadata={"uploaded-by": "test"}, content_type="text/csv")
    return archive


def _company_run(machines: Machines, **parameters: Any) -> Any:
    """Start monthly-closing-all for MONTH and wait until it ended; its final state."""
    run_id = UUID(start_deployment("monthly-closing-all/monthly-closing-all",
                                   {"month": MONTH, "check_seconds": 0.5, **parameters}))
    with get_client(sync_client=True) as client:
        return wait_until(lambda: (s := client.read_flow_run(run_id).state) is not None
                          and s.is_final() and s, timeout=300,
                          what=f"the company closing to end\n{machines.tail()}")


def _outcomes(archive: Archive) -> list[dict[str, str]]:
    """The branch outcomes of each company closing, oldest first (from the audit log)."""
    with new_session(archive.engine) as session:
        events = session.exec(select(AuditEvent).where(
            AuditEvent.action == "company-closing").order_by(col(AuditEvent.id))).all()
    return [json.loads(e.content)["details"]["outcomes"] for e in events]


def _children() -> dict[str, list[Any]]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["company-closing"])))
    by_branch: dict[str, list[Any]] = {}
    for run in runs:
        branch = next(t for t in run.tags if t.startswith("branch:")).split(":", 1)[1]
        by_branch.setdefault(branch, []).append(run)
    return by_branch


def _busy_spans(runs: list[Any]) -> list[tuple[datetime, datetime]]:
    """Each run from its creation until it first waited for a signature or ended."""
    spans = []
    with get_client(sync_client=True) as client:
        for run in runs:
            states = sorted(client.read_flow_run_states(run.id), key=lambda s: s.timestamp)
            settled = next(s.timestamp for s in states
                           if s.type.value in ("PAUSED", "COMPLETED", "FAILED", "CANCELLED"))
            spans.append((run.created, settled))
    return spans


def _sign_all(archive: Archive, branch: str, run_id: UUID) -> None:
    for signer in SIGNERS[branch]:
        sent = send_form(archive.engine, flow_run_id=run_id, request_key=f"payroll:{branch}:"
                         f"{MONTH}", timeout=180,
                         run_input={"signer": signer, "secret": f"pw-{signer}",
                                    "decision": "approve", "opinion": "同意"})
        assert sent.outcome == "decision", sent


def _pay_records(archive: Archive) -> tuple[list[tuple[str, int, str]], list[str], int]:
    with new_session(archive.engine) as session:
        runs = [(r.branch, r.revision, r.status) for r in session.exec(
            select(PayrollRun).order_by(col(PayrollRun.branch)))]
        lines = sorted(line.cm_id for line in session.exec(select(PayrollLineRecord)))
        carries = len(session.exec(select(PayrollCarry)).all())
    return runs, lines, carries


def test_company_closing_fans_out_fails_bad_branches_alone_and_never_pays_twice(
    machines: Machines, company: Archive,
) -> None:
    archive = company
    first = _company_run(machines, max_parallel=2)
    assert first.is_failed(), first  # failed branches make the run fail, after the others
    message = first.message or ""
    assert "2 of 5 branches failed" in message, message
    assert f"BJ04: BadInput: file crm/BJ04/{MONTH}/clients.csv, row 2, column assets" in message
    assert "GZ02: " in message and f"no CRM export under s3://{archive.inputs.bucket}/crm/GZ02/" \
        in message, message
    assert _outcomes(archive)[-1] == {"BJ04": "failed", "GZ02": "failed", "SH03": "waiting",
                                      "SZ01": "waiting", "XX99": "skipped"}
    children = _children()
    assert sorted(children) == ["BJ04", "GZ02", "SH03", "SZ01"]  # XX99 is not on the roster
    spans = _busy_spans([runs[0] for runs in children.values()])
    most = max(sum(1 for a, b in spans if a <= moment < b) for moment, _ in spans)
    assert most <= 2  # never more than max_parallel branch closings at work
    assert _pay_records(archive)[0] == [("SH03", 1, "signing"), ("SZ01", 1, "signing")]

    # again while the sign-off waits: nothing started twice for SZ01 and SH03
    again = _company_run(machines, max_parallel=3)
    assert again.is_failed() and "2 of 5 branches failed" in (again.message or "")
    assert _outcomes(archive)[-1] == {"BJ04": "failed", "GZ02": "failed", "SH03": "skipped",
                                      "SZ01": "skipped", "XX99": "skipped"}
    assert {b: len(r) for b, r in _children().items()} == {"BJ04": 2, "GZ02": 2, "SH03": 1,
                                                           "SZ01": 1}
    for branch in ("SZ01", "SH03"):
        _sign_all(archive, branch, children[branch][0].id)
    with get_client(sync_client=True) as client:
        for branch in ("SZ01", "SH03"):
            wait_until(lambda b=branch: (s := client.read_flow_run(
                children[b][0].id).state) is not None and s.is_completed(), timeout=180,
                what=f"{branch}'s closing to finish\n{machines.tail()}")
    paid = _pay_records(archive)
    assert paid[0] == [("SH03", 1, "closed"), ("SZ01", 1, "closed")]
    assert paid[1] == ["SH03cm1", "SH03sm1", "SZ01cm1", "SZ01sm1"]

    # and after it: the closed months are left alone, the pay stays as it was
    last = _company_run(machines)
    assert last.is_failed()
    assert _outcomes(archive)[-1]["SZ01"] == "skipped"
    assert _outcomes(archive)[-1]["SH03"] == "skipped"
    assert _pay_records(archive) == paid
    with new_session(archive.engine) as session:
        computed = session.exec(select(AuditEvent).where(
            AuditEvent.action == "payroll-computed")).all()
    assert len(computed) == 2  # SZ01 and SH03, once each, over three company closings
    assert_intact(archive, run_ids=[r.id for runs in _children().values() for r in runs])
