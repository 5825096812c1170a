"""Production mode: the filing chain as a served deployment that suspends (no process held)
while managers decide, and survives a restart of the serving process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.input import keyset_from_paused_state
from sqlmodel import select

from brokerflow.app.runs import start_deployment
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ApprovalDecision, AuditEvent, Filing
from tests.support.paths import ROSTER_CSV, console_script

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>


REPO = Path(__file__).resolve().parent.parent


class Server:
    """``brokerflow serve`` as a child process, the way ``brokerflow up`` runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*console_script(), "serve"], cwd=REPO,
                                            env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)


@pytest.fixture
def served(prefect_api: None, env: dict[str, str], tmp_path: Path, cli) -> Iterator[Server]:
    from prefect.settings import PREFECT_API_URL

    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    child_env = dict(os.environ, **env, PREFECT_API_URL=str(PREFECT_API_URL.value()),
                     PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                     PREFECT_HOME=str(tmp_path / "prefect-home"))
    server = Server(child_env, tmp_path / "serve.log")
    server.start()
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.read_deployment_by_name("filing-chain/filing-chain")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise AssertionError(server.log.read_text()) from None
                time.sleep(0.5)
    yield server
    server.stop()


def _wait_suspended(run_id: UUID, *, attempts: int, archive: Archive, filing_id: int,
                    log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            with new_session(archive.engine) as session:
                filing = session.get(Filing, filing_id)
                assert filing is not None
            if state is not None and state.is_paused() and filing.form_attempts == attempts:
                try:
                    client.read_flow_run_input(run_id, keyset_from_paused_state(state)["schema"])
                    assert state.name == "Suspended"
                    return
                except AssertionError:
                    raise
                except Exception:
                    pass
            if state is not None and state.is_final():
                raise AssertionError(f"run ended: {state}\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    raise AssertionError(f"not suspended in time\n{log.read_text()[-3000:]}")


def _decisions(archive: Archive) -> list[tuple[str, str]]:
    with new_session(archive.engine) as session:
        return [(d.step, d.signer_id) for d in session.exec(
            select(ApprovalDecision).order_by(ApprovalDecision.id))]


@pytest.mark.slow
def test_a_restart_while_waiting_loses_no_decision_and_applies_none_twice(
    served: Server, archive: Archive, cli
) -> None:

    submitted = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                    "--subject", "2027年度人员招聘计划", "--body", "招聘十名客户经理。",
                    "--no-start", user="bk1")
    assert submitted.code == 0, submitted.err
    filing_id = int(submitted.out.split()[1])
    run_id = UUID(start_deployment("filing-chain/filing-chain", {"filing_id": filing_id}))
    _wait_suspended(run_id, attempts=0, archive=archive, filing_id=filing_id, log=served.log)

    served.stop()   # the worker dies while the chain waits on the brokerage office
    served.start()  # ... and comes back
    resume_flow_run(run_id, run_input={"signer": "bo1", "secret": "pw-bo1",
                                       "decision": "approve", "opinion": "转报"})
    _wait_suspended(run_id, attempts=1, archive=archive, filing_id=filing_id, log=served.log)
    assert _decisions(archive) == [("office_receive", "bo1")]

    signed = cli("filing", "sign", str(filing_id), "--departments", "", "--opinion", "无需会签",
                 user="ch1")
    assert signed.code == 0, signed.err
    _wait_suspended(run_id, attempts=2, archive=archive, filing_id=filing_id, log=served.log)
    assert _decisions(archive) == [("office_receive", "bo1"), ("channel_review", "ch1")]
    with new_session(archive.engine) as session:
        decisions = session.exec(select(AuditEvent).where(AuditEvent.action == "decision")).all()
        assert len(decisions) == 2
    with get_client(sync_client=True) as client:
        prefix = f"suspended-filing-{filing_id}-r1"
        assert _exists(client, run_id, f"{prefix}-f2-schema")  # the key names are right
        # ... and no usable secret is left in Prefect's database
        assert not any(_exists(client, run_id, f"{prefix}-f{i}-response") for i in range(3))
    status = cli("filing", "status", str(filing_id), "--format", "json", user="bm1")
    assert '"step": "office_complete"' in status.out


def _exists(client, run_id: UUID, key: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        client.read_flow_run_input(run_id, key)
        return True
    except Exception:
        return False
