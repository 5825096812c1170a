"""Shared parts of the fault tests: a served filing chain and the invariants every fault must
leave intact (no decision lost or doubled, no orphan or duplicate document, serials gap-free,
audit intact, no form answer left in Prefect)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.app.runs import start_deployment
from brokerflow.approvals.filings import request_key
from brokerflow.approvals.waiting import FORM_KEY_PREFIXES, is_form_answer_key
from brokerflow.archive.service import Archive
from brokerflow.kernel.audit import verify_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import (
    ApprovalDecision,
    AuditEvent,
    Filing,
    SerialRecord,
    WaitingStep,
)
from tests.support.paths import console_script
from tests.support.services import ServeProcess, wait_until

#: The filing chain, signed as the sample roster's signers.
CHAIN = (("office_receive", "bo1", {}),
         ("channel_review", "ch1", {"departments": "compliance,risk"}),
         ("countersign", "risk1", {}), ("countersign", "comp1", {}),
         ("office_complete", "bo2", {}), ("vp_instruction", "vp1", {}))


def served_env(env: dict[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of ``brokerflow serve`` and CLI children in the fault tests."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, **env, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1",
            "BROKERFLOW_RUN_LEASE_SECONDS": "4", "BROKERFLOW_MAX_RUN_RECOVERIES": "10",
            "BROKERFLOW_FAILPOINT_DIR": str(tmp_path / "failpoints"), **extra}


def wait_served(serve: ServeProcess, timeout: float = 120) -> None:
    """Until serve has registered the filing-chain deployment."""
    with get_client(sync_client=True) as client:
        def registered() -> bool:
            try:
                client.read_deployment_by_name("filing-chain/filing-chain")
                return True
            except Exception:  # noqa: BLE001 - not yet
                assert serve.process is not None and serve.process.poll() is None, serve.tail()
                return False

        wait_until(registered, timeout=timeout, what=f"serve to start\n{serve.tail()}")


@dataclass
class ServedFiling:
    """One filing whose chain runs as a served deployment."""

    archive: Archive
    filing_id: int
    run_id: UUID
    env: dict[str, str]

    @property
    def key(self) -> str:
        return request_key(self.filing_id)

    def filing(self) -> Filing:
        with new_session(self.archive.engine) as session:
            filing = session.get(Filing, self.filing_id)
            assert filing is not None
            return filing

    def state(self) -> Any:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(self.run_id).state

    def wait_form(self, attempts: int | None, serve: ServeProcess, timeout: float = 120, *,
                  step: str | None = None) -> None:
        """Until the run is suspended on a saved form after ``attempts`` processed forms (or,
        with ``step``, on that step however many forms it took)."""
        from prefect.input import keyset_from_paused_state

        seen: dict[str, object] = {}

        def waiting() -> bool:
            state = self.state()
            with new_session(self.archive.engine) as session:
                row = session.get(WaitingStep, self.key)
            seen.update(state=state, attempts=self.filing().form_attempts, schema=None,
                        step=row.step if row else None)
            assert state is None or not state.is_final(), f"{state}\n{serve.tail()}"
            if state is None or not state.is_paused():
                return False
            if attempts is not None and self.filing().form_attempts != attempts:
                return False
            if step is not None and seen["step"] != step:
                return False
            with get_client(sync_client=True) as client:
                try:
                    client.read_flow_run_input(self.run_id,
                                               keyset_from_paused_state(state)["schema"])
                except Exception as exc:  # noqa: BLE001 - not saved yet
                    seen["schema"] = repr(exc)
                    return False
            return True

        try:
            wait_until(waiting, timeout=timeout, what=f"a form after {attempts} processed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {seen}\n{serve.tail()}") from None

    def sign_counted(self, signer: str, *extra: str) -> None:
        """``brokerflow filing sign`` as ``signer``; it must exit 0."""
        done = self.sign(signer, *extra)
        assert isinstance(done, subprocess.CompletedProcess)
        assert done.returncode == 0, done.stderr

    def sign(self, signer: str, *extra: str, secret: str | None = None,
             background: bool = False) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
        """``brokerflow filing sign`` as ``signer`` in a child process."""
        argv = [*console_script(), "filing", "sign", str(self.filing_id), *extra,
                "--as", signer, "--timeout", "180"]
        env = dict(self.env, BROKERFLOW_SECRET=secret or f"pw-{signer}")
        if background:
            return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)


def submit_served_filing(archive: Archive, env: dict[str, str], cli: Callable[..., Any],
                         subject: str = "2027年度人员招聘计划") -> ServedFiling:
    submitted = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                    "--subject", subject, "--body", "招聘十名客户经理。", "--no-start", user="bk1")
    assert submitted.code == 0, submitted.err
    filing_id = int(submitted.out.split()[1])
    run_id = UUID(start_deployment("filing-chain/filing-chain", {"filing_id": filing_id}))
    return ServedFiling(archive, filing_id, run_id, env)


def decisions(archive: Archive, key: str) -> list[tuple[str, str]]:
    with new_session(archive.engine) as session:
        return [(d.step, d.signer_id) for d in session.exec(
            select(ApprovalDecision).where(ApprovalDecision.request_key == key)
            .order_by(ApprovalDecision.id))]


def audit_actions(archive: Archive, action: str) -> list[AuditEvent]:
    with new_session(archive.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def stored_answers(run_ids: Sequence[UUID]) -> list[str]:
    """Form answers (they hold secrets) still stored in Prefect for these runs."""
    keys = []
    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            for prefix in FORM_KEY_PREFIXES:
                keys += [i.key for i in client.filter_flow_run_input(
                    flow_run_id=run_id, key_prefix=prefix, limit=500, exclude_keys=set())
                    if is_form_answer_key(i.key)]
    return keys


def assert_intact(archive: Archive, *, run_ids: Sequence[UUID]) -> None:
    """Audit chain intact, every serial stored and verified, no answer left in Prefect."""
    with new_session(archive.engine) as session:
        assert verify_audit(session) == []
        records = list(session.exec(select(SerialRecord)))
    assert [r.serial for r in records if r.status != "stored"] == []
    report = archive.verify()
    assert report.ok, report.problems
    left = stored_answers(run_ids)
    assert left == [], left


def wait_marker(directory: Path, point: str, serve: ServeProcess, timeout: float = 120) -> None:
    """Until a process stopped at failpoint ``point``."""
    wait_until(lambda: list(directory.glob(f"{point}.*")), timeout=timeout,
               what=f"failpoint {point}\n{serve.tail()}")
    time.sleep(0.2)


def cancel_unfinished_runs() -> None:
    """Cancel every run of the test server that has not ended: the next test's serve must not
    recover them into its own database."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    unfinished = [StateType.PENDING, StateType.RUNNING, StateType.SCHEDULED, StateType.PAUSED,
                  StateType.CRASHED]
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=unfinished))), limit=200):
            client.set_flow_run_state(run.id, Cancelled(), force=True)
