"""Commands tell the truth (SPEC §10): a start validates first (exit 2, nothing started),
then waits until the run waits for a signature or refuses, and exits with the SPEC code and
the reason; a signature the flow refuses, or a second quick one, exits 3 with why."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import AuditEvent, PayrollRun
from brokerflow.kernel.vocabulary import ClosingStatus
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.records import record_run, set_status
from tests.support.paths import ROSTER_CSV
from tests.support.payroll_data import POLICY, client_row, staff_row, write_export
from tests.support.reliability import cancel_unfinished_runs
from tests.support.services import ServeProcess

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>


def _close(cli, month: str, *extra: str):  # type: ignore[no-untyped-def]
    return cli("payroll", "close", "--branch", "SZ01", "--month", month, "--policy",
               str(POLICY), *extra, user="admin1")


def _record_month(archive: Archive, tmp_path: Path, month: str, status: str) -> None:
    export = write_export(tmp_path / month, staff=[staff_row("cm1", month=month)],
                          clients=[client_row("c1", "cm1", month=month, assets="1000")])
    result = compute_from_directory(month=month, data_dir=export, policy=POLICY)
    with new_session(archive.engine) as session:
        run = record_run(session, branch="SZ01", month=month, result=result, flow_run_id="")
        set_status(session, run=run, status=status)
        session.commit()


def test_a_closing_is_refused_before_anything_starts(
    cli, archive: Archive, roster: None, tmp_path: Path
) -> None:
    helped = cli("payroll", "close", "--help")
    assert "--no-wait" in helped.out and "--timeout" in helped.out
    wrong = _close(cli, "2026/10")
    assert wrong.code == 2 and "--month" in wrong.err and "2026/10" in wrong.err
    assert _close(cli, "2026-+1").code == 2  # int() would take it; the month must be exact
    _record_month(archive, tmp_path, "2026-09", ClosingStatus.CLOSED)
    closed = _close(cli, "2026-09")
    assert closed.code == 2, closed.err
    assert "is closed" in closed.err and "payroll reopen" in closed.err
    _record_month(archive, tmp_path, "2026-07", ClosingStatus.REOPENED)
    after_reopened = _close(cli, "2026-08")  # it would continue from a state being corrected
    assert after_reopened.code == 2 and "2026-07 is reopened" in after_reopened.err
    with new_session(archive.engine) as session:  # no start ticket, no new run
        assert len(session.exec(select(PayrollRun)).all()) == 2
        assert not session.exec(select(AuditEvent).where(
            AuditEvent.action == "closing-requested")).all()


@pytest.fixture
def served(prefect_api: None, env: dict[str, str], tmp_path: Path, cli) -> Iterator[None]:
    """``brokerflow serve`` (every deployment of prefect.yaml) as ``brokerflow up`` runs it."""
    from prefect.settings import PREFECT_API_URL

    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    cancel_unfinished_runs()  # runs earlier tests left on the shared server: not for this serve
    child_env = dict(os.environ, **env, PREFECT_API_URL=str(PREFECT_API_URL.value()),
                     PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                     PREFECT_HOME=str(tmp_path / "prefect-home"))
    server = ServeProcess(child_env, tmp_path / "serve.log").start()
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.read_deployment_by_name("monthly-closing/monthly-closing")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise AssertionError(server.tail()) from None
                    time.sleep(0.5)
        yield
    finally:
        server.stop()
        cancel_unfinished_runs()  # nor this test's runs for the next serve


@pytest.mark.slow
def test_starts_and_signatures_exit_with_what_the_run_did(
    served: None, archive: Archive, cli
) -> None:
    # a normal start: exit 0 once the chain waits, saying on what and for whom
    submitted = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                    "--subject", "2027年度人员招聘计划", "--body", "招聘十名客户经理。",
                    "--timeout", "150", user="bk1")
    assert submitted.code == 0, submitted.err
    filing_id = submitted.out.split()[1]
    assert "waiting on office_receive" in submitted.out, submitted.out
    assert "brokerage_office (bo1, bo2)" in submitted.out, submitted.out

    # a signer the step does not take: the flow's refusal, exit 3
    wrong = cli("filing", "sign", filing_id, "--opinion", "转报", user="ch1")
    assert wrong.code == 3, wrong.out + wrong.err
    assert "was refused" in wrong.err and "brokerage_office" in wrong.err

    # the same step signed twice quickly: the second is told, exit 3
    first = cli("filing", "sign", filing_id, "--opinion", "转报", "--no-wait", user="bo1")
    assert first.code == 0, first.err
    second = cli("filing", "sign", filing_id, "--opinion", "转报", user="bo1")
    assert second.code == 3, second.out + second.err
    assert "Cannot resume" not in second.err
    assert "signed by you already" in second.err or "was refused" in second.err, second.err
    status = cli("filing", "status", filing_id, user="bm1")
    assert "waiting on channel_review" in status.out, status.out

    # a closing its flow refuses (no CRM export in the bucket): exit 2 with the flow's reason
    refused = _close(cli, "2026-10", "--timeout", "150")
    assert refused.code == 2, refused.out + refused.err
    assert "refused:" in refused.err and "no CRM export" in refused.err
    assert "flow run " in refused.out
    shown = cli("payroll", "status", "--branch", "SZ01", "--month", "2026-10", user="ca1")
    assert shown.code == 0, shown.err
    assert "last failed run" in shown.out and "no CRM export" in shown.out

    # --no-wait keeps fire and forget
    again = _close(cli, "2026-10", "--no-wait")
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1].startswith("flow run "), again.out


def test_a_month_parameter_is_bad_input_naming_it() -> None:
    """A run started from the Prefect UI with ``month: 2026/10`` fails with the SPEC's bad
    input (exit 2, naming the parameter), which its start command reports, not a ValueError."""
    from brokerflow.kernel.calendar import Month
    from brokerflow.kernel.errors import BadInput

    for text in ("2026/10", "2026-+1", "２０２６-10", "2026-1", "2026-13"):
        with pytest.raises(BadInput) as refused:
            Month.parse_parameter(text)
        assert refused.value.column == "month" and repr(text) in str(refused.value)
    assert str(Month.parse_parameter("2026-10")) == "2026-10"
