"""Fault tests on the real parts (docs/reliability.md): the filing chain served by ``brokerflow
serve`` on the Prefect test server, SQLite, an S3 endpoint over HTTP.  Each fault is
reproduced, then survived: no decision lost or doubled, no orphan or duplicate document,
serials gap-free, audit intact, the chain finishes, no form answer left in Prefect."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import Cancelled

from brokerflow.approvals.submission import SentForm, send_form
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.serials import parse_serial
from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.settings import load_settings
from tests.support.paths import ROSTER_CSV
from tests.support.reliability import (
    CHAIN,
    ServedFiling,
    assert_intact,
    audit_actions,
    cancel_unfinished_runs,
    decisions,
    served_env,
    stored_answers,
    submit_served_filing,
    wait_marker,
    wait_served,
)
from tests.support.services import MotoProcess, ServeProcess, wait_until

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>


@pytest.fixture
def serve(prefect_api: None, env: dict[str, str], tmp_path: Path, cli) -> Iterator[ServeProcess]:
    """``brokerflow serve`` for the fault tests (4-second run leases)."""
    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    process = ServeProcess(served_env(env, tmp_path), tmp_path / "serve.log").start()
    wait_served(process)
    yield process
    process.stop()
    cancel_unfinished_runs()  # the Prefect server outlives this test's database


@pytest.fixture
def chain(serve: ServeProcess, archive: Archive, env: dict[str, str], tmp_path: Path,
          cli) -> ServedFiling:
    """A filing whose served chain waits on its first form."""
    submitted = submit_served_filing(archive, served_env(env, tmp_path), cli)
    submitted.wait_form(0, serve)
    return submitted


def _sign_args(extra: dict[str, str]) -> list[str]:
    return [arg for name, value in extra.items() for arg in (f"--{name}", value)]


def _kill_at(point: str, chain: ServedFiling, serve: ServeProcess, tmp_path: Path,
             signer: str, extra: dict[str, str]) -> Any:
    """Restart serve armed at ``point``, sign, kill serve's whole process group there, and
    start serve again (unarmed).  The run's Prefect state when it was killed."""
    serve.kill_group()
    serve.start(BROKERFLOW_FAILPOINTS=point)
    wait_served(serve)
    chain.sign_counted(signer, *_sign_args(extra), "--no-wait")
    wait_marker(tmp_path / "failpoints", point, serve)
    serve.kill_group()
    stranded = chain.state()
    serve.start()
    return stranded


@pytest.mark.slow
def test_serve_killed_at_every_point_of_a_resume_loses_and_doubles_nothing(
    serve: ServeProcess, chain: ServedFiling, archive: Archive, tmp_path: Path,
) -> None:
    points = {  # step -> where serve dies after that step's form was sent
        0: ("serve.before-run-process", "PENDING"),  # picked up, no process started yet
        1: ("form.read", "RUNNING"),  # the form read, not yet counted
        2: ("form.recorded", "RUNNING"),  # counted, its stored answer not yet deleted
        5: ("archive.stored", "RUNNING"),  # the FOP stored, not yet indexed
    }
    for number, (_, signer, extra) in enumerate(CHAIN):
        if number in points:
            point, expected = points[number]
            stranded = _kill_at(point, chain, serve, tmp_path, signer, extra)
            assert stranded.type.value == expected, (point, stranded)
        else:
            chain.sign_counted(signer, *_sign_args(extra))
        if number < len(CHAIN) - 1:
            chain.wait_form(number + 1, serve)
    wait_until(lambda: chain.state().is_completed(), timeout=120,
               what=f"the chain to finish\n{serve.tail()}")
    filing = chain.filing()
    assert filing.status == "approved" and filing.result_serial.startswith("SZ01-FOP-")
    assert decisions(archive, chain.key) == [(step, signer) for step, signer, _ in CHAIN]
    assert len(audit_actions(archive, "decision")) == len(CHAIN)
    recovered = audit_actions(archive, "run-recovered")
    # every kill is recovered; on a loaded machine a run that needs more than the 4-second
    # lease to start can be taken for stranded once more, which is harmless: nothing above
    # was counted twice, and nothing below was stored twice
    assert len(points) <= len(recovered) <= len(points) + 2
    assert_intact(archive, run_ids=[chain.run_id])
    serials = sorted(e.serial for e in archive.search(
        SearchFilter(), actor=archive.authenticate("comp1", "pw-comp1")))
    assert [s.split("-")[1] for s in serials] == ["FIL", "FOP"]  # one of each, nothing voided


@pytest.mark.slow
def test_signatures_at_the_same_moment_are_all_counted_or_refused_with_a_reason(
    serve: ServeProcess, chain: ServedFiling, archive: Archive, cli,
) -> None:
    wrong = chain.sign("bo1", secret="not-the-secret")
    assert isinstance(wrong, subprocess.CompletedProcess)
    assert wrong.returncode == 3, wrong.stderr
    assert audit_actions(archive, "refused") == []  # checked before anything was sent
    assert chain.state().is_paused() and chain.filing().form_attempts == 0
    # two people of the same office sign its one step at once: one counts, one is told
    both = [chain.sign(who, background=True) for who in ("bo1", "bo2")]
    results = [(p.wait(timeout=240), *p.communicate()) for p in both
               if isinstance(p, subprocess.Popen)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    loser = next(err for code, _, err in results if code == 3)
    assert "was signed by someone else meanwhile" in loser, loser
    assert len(decisions(archive, chain.key)) == 1
    # the loser's form may have reached the next step's form and been refused there: the
    # count of forms is then one higher, the step the same
    chain.wait_form(None, serve, step="channel_review")
    chain.sign_counted("ch1", "--departments", "compliance,risk")
    chain.wait_form(None, serve, step="countersign")
    # the two countersigning departments at the same moment: both are counted
    pair = [chain.sign(who, background=True) for who in ("risk1", "comp1")]
    outcomes = [(p.wait(timeout=240), *p.communicate()) for p in pair
                if isinstance(p, subprocess.Popen)]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    chain.wait_form(None, serve, step="office_complete")
    assert sorted(decisions(archive, chain.key)[2:]) == [("countersign", "comp1"),
                                                          ("countersign", "risk1")]
    status = cli("filing", "status", str(chain.filing_id), "--format", "json", user="bm1")
    assert '"step": "office_complete"' in status.out and '"Suspended"' in status.out


@pytest.mark.slow
def test_a_cancelled_run_keeps_no_form_answer(
    serve: ServeProcess, chain: ServedFiling, archive: Archive,
) -> None:
    serve.kill_group()  # nobody will process the form sent now
    chain.sign_counted("bo1", "--no-wait")
    assert stored_answers([chain.run_id])  # the secret is in Prefect until consumed ...
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(chain.run_id, Cancelled(), force=True)
    serve.start()  # ... and the sweep of a starting serve discards it
    wait_until(lambda: not stored_answers([chain.run_id]), timeout=60,
               what=f"the cancelled run's answer to be discarded\n{serve.tail()}")
    assert decisions(archive, chain.key) == []


@pytest.mark.slow
def test_countersigners_racing_in_threads_are_both_counted(
    serve: ServeProcess, archive: Archive, env: dict[str, str], tmp_path: Path, cli,
) -> None:
    """The same race without process start-up jitter: both forms leave together."""
    for trial in range(3):
        chain = submit_served_filing(archive, served_env(env, tmp_path), cli,
                                     subject=f"2027年度考核办法（第{trial + 1}稿）")
        chain.wait_form(0, serve)
        for number, (_, signer, extra) in enumerate(CHAIN[:2]):
            chain.sign_counted(signer, *_sign_args(extra))
            chain.wait_form(number + 1, serve)
        start = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def countersign(signer: str, chain: ServedFiling = chain,
                        start: threading.Barrier = start,
                        outcomes: dict[str, object] = outcomes) -> None:
            start.wait()
            try:
                outcomes[signer] = send_form(
                    archive.engine, flow_run_id=chain.run_id, request_key=chain.key,
                    run_input={"signer": signer, "secret": f"pw-{signer}",
                               "decision": "approve", "opinion": "会签同意"}, timeout=180)
            except Exception as exc:  # noqa: BLE001 - reported below
                outcomes[signer] = exc

        threads = [threading.Thread(target=countersign, args=(s,)) for s in ("risk1", "comp1")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        assert all(isinstance(o, SentForm) and o.outcome == "decision"
                   for o in outcomes.values()), outcomes
        chain.wait_form(None, serve, step="office_complete")
        assert sorted(decisions(archive, chain.key)[2:]) == [("countersign", "comp1"),
                                                              ("countersign", "risk1")]


@pytest.fixture
def flaky_s3(tmp_path: Path, env: dict[str, str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoProcess]:
    """This test's S3 endpoint in a process of its own, so that it can be frozen."""
    moto = MotoProcess(tmp_path / "moto.log")
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", moto.endpoint)
    env["BROKERFLOW_S3_ENDPOINT"] = moto.endpoint
    yield moto
    moto.stop()


@pytest.mark.slow
def test_an_object_store_outage_while_a_resumed_run_archives_is_waited_out(
    prefect_api: None, flaky_s3: MotoProcess, env: dict[str, str], tmp_path: Path, cli,
) -> None:
    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    archive = open_archive(load_settings())  # the bucket, on the freezable endpoint
    outage = {"BROKERFLOW_S3_TIMEOUT_SECONDS": "2", "BROKERFLOW_S3_RETRY_SECONDS": "5",
              "BROKERFLOW_ARCHIVE_RETRIES": "5", "BROKERFLOW_ARCHIVE_RETRY_DELAY_SECONDS": "2"}
    child_env = served_env(env, tmp_path, **outage)
    serve = ServeProcess(child_env, tmp_path / "serve.log").start()
    try:
        wait_served(serve)
        chain = submit_served_filing(archive, child_env, cli)
        chain.wait_form(0, serve)
        for number, (_, signer, extra) in enumerate(CHAIN[:-1]):
            chain.sign_counted(signer, *_sign_args(extra))
            chain.wait_form(number + 1, serve)
        flaky_s3.freeze()  # nothing answers on the S3 port from now on
        frozen_at = time.monotonic()
        chain.sign_counted("vp1")  # the resumed run starts and counts it without the store
        assert decisions(archive, chain.key)[-1] == ("vp_instruction", "vp1")
        time.sleep(max(0.0, 25 - (time.monotonic() - frozen_at)))  # past every timeout
        assert not chain.state().is_final(), serve.tail()  # still trying, not failed
        flaky_s3.thaw()
        wait_until(lambda: chain.state().is_completed(), timeout=120,
                   what=f"the chain to finish after the outage\n{serve.tail()}")
    finally:
        serve.stop()
        cancel_unfinished_runs()
    filing = chain.filing()
    assert filing.status == "approved"
    fop = parse_serial(filing.result_serial)
    assert [v.version_id for v in archive.store.versions(fop.object_key)]  # stored ...
    assert len(list(archive.store.versions(fop.object_key))) == 1  # ... exactly once
    assert decisions(archive, chain.key) == [(step, signer) for step, signer, _ in CHAIN]
    assert_intact(archive, run_ids=[chain.run_id])
    with get_client(sync_client=True) as client:
        attempts = [t.run_count for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[chain.run_id])))
            if t.name.startswith("archive-document")]
    assert max(attempts) >= 2  # Prefect ran the archive step again after the outage


def test_a_run_that_fails_for_good_shows_as_needing_an_operator(
    prefect_api: None, archive: Archive, roster: None, user, cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    from brokerflow.app.s3server import free_port
    from brokerflow.approvals.filings import create_filing
    from brokerflow.flows.filing import filing_chain
    from brokerflow.kernel.db import new_session

    with new_session(archive.engine) as session:
        filing = create_filing(session, branch="SZ01", kind="assessment", subject="考核办法",
                               body="……", submitter=user("bk1"))
        session.commit()
    for name, value in {"BROKERFLOW_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                        "BROKERFLOW_S3_RETRY_SECONDS": "1", "BROKERFLOW_ARCHIVE_RETRIES": "1",
                        "BROKERFLOW_ARCHIVE_RETRY_DELAY_SECONDS": "0.1"}.items():
        monkeypatch.setenv(name, value)  # the store is gone for good
    state = filing_chain(filing_id=filing.id, wait="pause", return_state=True)
    assert state.is_failed() and "StorageError" in (state.message or "")
    status = cli("filing", "status", str(filing.id), user="bm1")
    assert status.code == 0, status.err
    assert "ATTENTION run" in status.out and "needs an operator" in status.out
    assert "StorageError" in status.out
