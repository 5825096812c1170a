"""Work pool brokerflow with two process workers on "machines" of their own (SPEC §7): one
Prefect server on PostgreSQL, brokerflow's database on PostgreSQL, the S3 endpoint.  The filing
chain and a monthly closing run through the pool; a worker's whole process group is killed
mid-run (while a run is processing a form, archiving, or between a signature and the resumed
step) and the run goes on on the other worker: no decision lost or doubled, no orphan or
duplicate document, nobody paid twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.approvals.submission import send_form
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import AuditEvent, PayrollLineRecord, PayrollRun
from brokerflow.kernel.settings import load_settings
from tests.support.paths import ROSTER_CSV
from tests.support.payroll_data import (
    MONTH,
    approve_pay_rules,
    client_row,
    staff_row,
    write_export,
)
from tests.support.reliability import (
    CHAIN,
    assert_intact,
    audit_actions,
    decisions,
    submit_served_filing,
    wait_marker,
)
from tests.support.services import wait_until
from tests.support.workers import Machines, WorkerProcess, company_set_up

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("development")]


@pytest.fixture
def machines(tmp_path: Path, env: dict[str, str], postgres_url: str, postgres_database: str,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Machines]:
    """Both databases on PostgreSQL, two workers with 4-second leases."""
    with company_set_up(tmp_path, env, postgres_url, postgres_database, monkeypatch) as running:
        yield running


@pytest.fixture
def company_archive(machines: Machines, cli) -> Archive:
    """The shared archive (PostgreSQL, bucket) with the sample roster loaded."""
    loaded = cli("roster", "load", str(ROSTER_CSV))
    assert loaded.code == 0, loaded.err
    archive = open_archive(load_settings())
    approve_pay_rules(archive.engine, branch="SZ01")
    return archive


def kill_at(point: str, machines: Machines, failpoints: Path,
            action: Callable[[], Any]) -> None:
    """Make m1 the only live worker, armed at ``point``; do ``action``; when m1's run process
    stops at ``point``, SIGKILL m1's whole process group, wake m2, start m1 again (unarmed).
    The stranded run's Prefect state and id."""
    m1, m2 = machines.workers
    m2.freeze()
    try:
        m1.kill_group()
        m1.start(BROKERFLOW_FAILPOINTS=point)
        action()
        wait_marker(failpoints, point, m1)  # type: ignore[arg-type]
        for path in failpoints.glob(f"{point}.*"):
            path.unlink()
        m1.kill_group()
    finally:
        m2.thaw()
    m1.start()


def _stranded_runs(archive: Archive) -> list[str]:
    return [e.content for e in audit_actions(archive, "run-recovered")]


def test_filing_chain_goes_on_on_the_other_worker(
    machines: Machines, company_archive: Archive, cli, tmp_path: Path,
) -> None:
    archive, failpoints = company_archive, tmp_path / "failpoints"
    chain = submit_served_filing(archive, machines.env, cli)
    chain.wait_form(0, machines)  # type: ignore[arg-type]
    for number, (_, signer, extra) in enumerate(CHAIN):
        args = [a for name, value in extra.items() for a in (f"--{name}", value)]
        if number == 1:  # m1 dies with the decision counted, its stored answer not deleted
            kill_at("form.recorded", machines, failpoints,
                    lambda signer=signer, args=args: chain.sign_counted(signer, *args,
                                                                       "--no-wait"))
        elif number == 5:  # m1 dies with the FOP stored in the bucket, not yet indexed
            kill_at("archive.stored", machines, failpoints,
                    lambda signer=signer: chain.sign_counted(signer, "--no-wait"))
        else:
            chain.sign_counted(signer, *args)
        if number < len(CHAIN) - 1:
            chain.wait_form(number + 1, machines, timeout=180)  # type: ignore[arg-type]
    wait_until(lambda: chain.state().is_completed(), timeout=180,
               what=f"the chain to finish\n{machines.tail()}")
    filing = chain.filing()
    assert filing.status == "approved" and filing.result_serial.startswith("SZ01-FOP-")
    assert decisions(archive, chain.key) == [(step, signer) for step, signer, _ in CHAIN]
    assert len(audit_actions(archive, "decision")) == len(CHAIN)
    assert len(_stranded_runs(archive)) >= 2  # each kill stranded the run (see below)
    assert_intact(archive, run_ids=[chain.run_id])
    serials = sorted(e.serial for e in archive.search(
        SearchFilter(), actor=archive.authenticate("comp1", "pw-comp1")))
    assert [s.split("-")[1] for s in serials] == ["FIL", "FOP"]  # one of each, none voided
    assert all(w.alive() for w in machines.workers)


STAFF = [staff_row("cm1", name="杨帆", supervisor_id="sm1"),
         staff_row("cm2", name="朱琳", supervisor_id="sm1"),
         staff_row("sm1", name="韩梅", position="stationed")]
CLIENTS = [client_row("c1", "cm1", open_date="2026-10-05", purchases="6000", assets="300000",
                      turnover="1000000", gross_commission="2000"),
           client_row("c2", "cm2", assets="50000", gross_commission="100"),
           client_row("c3", "sm1", assets="1000000", gross_commission="800")]


def _paused_on(archive: Archive, run_id: UUID, step: str, machines: Machines) -> None:
    from brokerflow.kernel.models import WaitingStep

    def waiting() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        assert state is None or not state.is_final(), f"{state}\n{machines.tail()}"
        with new_session(archive.engine) as session:
            row = session.get(WaitingStep, f"payroll:SZ01:{MONTH}")
        return bool(state and state.is_paused() and row and row.step == step)

    wait_until(waiting, timeout=180, what=f"the closing to wait for {step}\n{machines.tail()}")


def test_monthly_closing_goes_on_on_the_other_worker_and_pays_once(
    machines: Machines, company_archive: Archive, cli, tmp_path: Path,
) -> None:
    archive, failpoints = company_archive, tmp_path / "failpoints"
    export = write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS)
    started: list[str] = []

    def close() -> None:  # an identified closer uploads the export and starts the closing
        done = cli("payroll", "close", "--branch", "SZ01", "--month", MONTH, "--data",
                   str(export), "--no-wait", user="ca1")
        assert done.code == 0, done.err
        started.append(done.out.split("flow run ")[-1].strip())

    # m1 picks the new run up and dies before its process starts (Pending, no lease)
    kill_at("serve.before-run-process", machines, failpoints, close)
    run_id = UUID(started[0])
    _paused_on(archive, run_id, "chief_accountant", machines)
    key = f"payroll:SZ01:{MONTH}"

    def sign(signer: str, wait: bool = True) -> None:
        send_form(archive.engine, flow_run_id=run_id, request_key=key, wait=wait, timeout=180,
                  run_input={"signer": signer, "secret": f"pw-{signer}", "decision": "approve",
                             "opinion": f"{signer} 同意"})

    sign("ca1")
    _paused_on(archive, run_id, "deputy_manager", machines)
    # between a signature and the resumed step: m1 took the resumed run and died
    kill_at("serve.before-run-process", machines, failpoints, lambda: sign("dm1", wait=False))
    _paused_on(archive, run_id, "branch_manager", machines)
    # m1 dies with the signed PAS stored, not yet indexed
    kill_at("archive.stored", machines, failpoints, lambda: sign("bm1", wait=False))
    with get_client(sync_client=True) as client:
        wait_until(lambda: (s := client.read_flow_run(run_id).state) is not None
                   and s.is_completed(), timeout=180,
                   what=f"the closing to finish\n{machines.tail()}")
    with new_session(archive.engine) as session:
        runs = session.exec(select(PayrollRun).where(PayrollRun.branch == "SZ01")).all()
        lines = session.exec(select(PayrollLineRecord)).all()
        computed = session.exec(select(AuditEvent).where(
            AuditEvent.action == "payroll-computed")).all()
    assert [(r.revision, r.status) for r in runs] == [(1, "closed")]  # computed once
    assert sorted(line.cm_id for line in lines) == ["cm1", "cm2", "sm1"]  # one line each
    assert len(computed) == 1
    assert decisions(archive, key) == [("chief_accountant", "ca1"), ("deputy_manager", "dm1"),
                                       ("branch_manager", "bm1")]
    # each kill stranded the run once; a run may be handed back once more when its new
    # process took longer than the tests' 4-second lease to start (a busy machine)
    assert len(_stranded_runs(archive)) >= 3
    assert_intact(archive, run_ids=[run_id])
    types = sorted(e.serial.split("-")[1] for e in archive.search(
        SearchFilter(), actor=archive.authenticate("bm1", "pw-bm1")))
    # one of each (a payslip per CM): no orphan, no duplicate
    assert types == ["PAS", "PAY", "PSL", "PSL", "PSL", "RPT"]


def test_deploy_is_repeatable_and_a_worker_refuses_without_an_api(
    machines: Machines, tmp_path: Path,
) -> None:
    from tests.support.workers import deploy

    again = deploy(machines.env)  # an update, not a second set of deployments
    assert "work pool brokerflow (process) exists" in again
    assert "deployed monthly-closing-all/monthly-closing-all" in again
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        pool = client.read_work_pool("brokerflow")
    assert pool.type == "process"
    assert sorted(d.name for d in deployments) == [
        "approval-reminders", "attribution-import", "client-attribution", "filing-chain",
        "level-change",
        "monthly-closing", "monthly-closing-all", "quarterly-evaluation", "risk-fund",
        "risk-fund-refunds"]
    assert {d.work_pool_name for d in deployments} == {"brokerflow"}
    assert all(":" not in (d.entrypoint or "") and d.path is None for d in deployments)
    lonely = WorkerProcess("m3", {k: v for k, v in machines.env.items()
                                  if k != "PREFECT_API_URL"}, tmp_path)
    import subprocess

    from tests.support.paths import console_script

    refused = subprocess.run([*console_script(), "worker"], env=lonely.env, cwd=lonely.home,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "PREFECT_API_URL" in refused.stderr, refused.stderr
