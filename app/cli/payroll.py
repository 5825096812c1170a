"""``brokerflow payroll``: compute (pure), close (the monthly closing), reopen."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import AsUser, NoWait, Timeout, signed_in, the_archive
from brokerflow.app.cli._progress import counting
from brokerflow.app.run_watch import DEFAULT_TIMEOUT, start_and_wait
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput

app = typer.Typer(no_args_is_help=True)


class ResultFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


@app.command("compute", help="compute a month's payroll (no server needed)")
def compute(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    data: Annotated[Path, typer.Option(
        metavar="DIR", help="directory with staff.csv, clients.csv (or .xlsx), state.json")],
    policy: Annotated[Path | None, typer.Option(
        metavar="FILE", help="policy TOML (default: the packaged default policy)")] = None,
    output: Annotated[ResultFormat, typer.Option("--format")] = ResultFormat.json,
    out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="write here instead of stdout")] = None,
    state_out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="also write the state carried into the next month (state.json)"
    )] = None,
) -> None:
    """Pure computation: no server, no database; prints the result (SPEC §6.3, §8.1)."""
    from brokerflow.kernel.files import write_atomically
    from brokerflow.payroll.compute import (
        compute_from_directory,
        next_state,
        result_csv,
        result_json,
        write_xlsx,
    )
    from brokerflow.payroll.policy import DEFAULT_POLICY
    from brokerflow.payroll.state_file import read_state

    if output == ResultFormat.xlsx and out is None:
        raise BadInput("--format xlsx needs --out FILE", column="--out")
    opening = read_state(data / "state.json") if data.is_dir() else {}
    with counting("client rows read") as progress:
        result = compute_from_directory(month=month, data_dir=data,
                                        policy=policy or DEFAULT_POLICY, progress=progress,
                                        state=opening)
    if state_out is not None:
        text = json.dumps(next_state(result, opening), ensure_ascii=False, indent=2) + "\n"
        write_atomically(state_out, text.encode("utf-8"), column="--state-out")
    if output == ResultFormat.xlsx:
        assert out is not None
        write_xlsx(result, out)
        print(f"wrote {out} ({len(result.lines)} lines)")
        return
    text = (json.dumps(result_json(result), ensure_ascii=False, indent=2) + "\n"
            if output == ResultFormat.json else result_csv(result))
    if out is not None:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@app.command("close", help="start the monthly closing (sign-off) on Prefect")
def close(
    branch: Annotated[str, typer.Option()],
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    data: Annotated[Path | None, typer.Option(
        metavar="DIR", help="CRM export directory: uploaded to crm/<branch>/<YYYY-MM>/ in the "
        "bucket, where the closing reads it (default: what is there already)")] = None,
    policy: Annotated[Path | None, typer.Option(
        metavar="FILE", help="close with this policy instead of the approved pay rules "
        "(admin only; PAY then says the policy is not approved)")] = None,
    no_wait: NoWait = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_user: AsUser = None,
) -> None:
    """Start the monthly-closing deployment for a branch and month, as an identified user
    with a closing role of that branch (the run records who started it).  The closing uses
    the branch's approved pay rules in force for the month; an admin may give ``--policy``.
    A closed month, or one after a reopened month, is refused here (exit 2, nothing
    started); then the command waits until the run asks for the first signature or refuses
    (``app.run_watch``)."""
    from brokerflow.app.crm_exports import upload_export
    from brokerflow.kernel.calendar import Month
    from brokerflow.payroll.pay_rules import active_pay_rules, missing_pay_rules_message
    from brokerflow.payroll.policy import load_policy
    from brokerflow.payroll.starts import closing_refusal, issue_start_ticket

    try:
        canonical = str(Month.parse(month))
    except ValueError:
        canonical = ""
    if canonical != month:
        raise BadInput(f"month must be YYYY-MM, e.g. 2026-10 (got {month!r})",
                       column="--month")
    policy_text = None
    if policy is not None:
        load_policy(policy)  # exit 2 naming the key before anything happens
        policy_text = policy.read_text(encoding="utf-8")
    archive = the_archive(prepare_bucket=data is not None)
    actor = signed_in(archive, as_user)
    refusal = closing_refusal(actor, branch=branch, explicit_policy=policy is not None)
    if refusal is not None:
        raise archive.deny(actor, "close", f"payroll {branch} {month}", refusal)
    from brokerflow.approvals.staffing_guard import require_staffed
    require_staffed(archive.engine, chain="payroll", branch=branch)
    if policy_text is None:
        with new_session(archive.engine) as session:
            if active_pay_rules(session, branch=branch, month=month) is None:
                raise BadInput(missing_pay_rules_message(branch, month), column="--policy")
    _check_month_open(archive, branch=branch, month=month)
    parameters: dict[str, Any] = {"branch": branch, "month": month}
    if data is not None:
        uploaded = upload_export(archive, directory=data, branch=branch, month=month,
                                 actor=actor)
        print(f"uploaded {', '.join(uploaded)} to crm/{branch}/{month}/")
    with new_session(archive.engine) as session:
        parameters["ticket"] = issue_start_ticket(session, actor=actor, branch=branch,
                                                  month=month, policy_text=policy_text)
        session.commit()
    if policy_text is not None:
        print(f"closing with the policy {policy} (not approved: PAY says so)")
    start_and_wait(archive, "monthly-closing/monthly-closing", parameters,
                   request_key=f"payroll:{branch}:{month}", no_wait=no_wait, timeout=timeout,
                   status_hint=f"brokerflow payroll status --branch {branch} --month {month}")


def _check_month_open(archive: Archive, *, branch: str, month: str) -> None:
    """Refuse (exit 2) a closing the flow would refuse: the month is closed, or the month
    before it is reopened and not closed again."""
    from brokerflow.kernel.vocabulary import ClosingStatus
    from brokerflow.payroll.records import MonthClosed, latest_run, stale_previous_month

    with new_session(archive.engine) as session:
        latest = latest_run(session, branch=branch, month=month)
        stale = stale_previous_month(session, branch=branch, month=month)
    if latest is not None and latest.status == ClosingStatus.CLOSED:
        raise MonthClosed(f"{branch} {month} is closed (signed as {latest.signed_serial}); a "
                          "correction needs 'brokerflow payroll reopen' by the branch manager",
                          column="--month")
    if stale is not None:
        raise BadInput(f"{branch} {stale} is reopened: close it again first, so that {month} "
                       "continues from its corrected state", column="--month")


@app.command("reopen", help="reopen a closed month for correction (branch manager)")
def reopen(branch: Annotated[str, typer.Option()],
           month: Annotated[str, typer.Option(help="YYYY-MM")],
           reason: Annotated[str, typer.Option()], as_user: AsUser = None) -> None:
    """A closed month may be corrected only after the branch manager reopens it (audited)."""
    from brokerflow.payroll.records import reopen_month, reopen_refusal

    archive = the_archive()
    actor = signed_in(archive, as_user)
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    refusal = reopen_refusal(actor, branch=branch)
    if refusal is not None:
        raise archive.deny(actor, "reopen", f"payroll {branch} {month}", refusal)
    with new_session(archive.engine) as session:
        run = reopen_month(session, branch=branch, month=month, actor=actor, reason=reason)
        session.commit()
    print(f"{branch} {month} reopened; the next closing run computes revision "
          f"{run.revision + 1}")


@app.command("status", help="where a branch's monthly closing stands (the run, the step it "
                            "waits on, the last refusal)")
def status(branch: Annotated[str, typer.Option()],
           month: Annotated[str, typer.Option(help="YYYY-MM")],
           as_user: AsUser = None) -> None:
    """Head office, and the branch's closing roles and signers, see it."""
    from brokerflow.app.run_watch import describe_waiting
    from brokerflow.app.runs import failure_reason, run_report
    from brokerflow.approvals.run_failures import last_failure
    from brokerflow.kernel.models import WaitingStep
    from brokerflow.payroll.records import latest_run
    from brokerflow.payroll.starts import CLOSING_ROLES

    archive = the_archive()
    actor = signed_in(archive, as_user)
    if not actor.is_head_office and not (actor.branch == branch and actor.roles
                                         & (CLOSING_ROLES | {"deputy_manager"})):
        raise archive.deny(actor, "status", f"payroll {branch} {month}",
                           "needs head office, or a closing role or sign-off role of the "
                           "branch")
    key = f"payroll:{branch}:{month}"
    with new_session(archive.engine) as session:
        run = latest_run(session, branch=branch, month=month)
        waiting = session.get(WaitingStep, key)
    if run is None:
        print(f"{branch} {month}: no closing recorded")
    else:
        print(f"{branch} {month} revision {run.revision} [{run.status}]  PAY "
              f"{run.pay_serial or '-'}  PAS {run.signed_serial or '-'}")
    if waiting is not None:
        print(f"  {describe_waiting(archive, waiting)}")
        if waiting.last_refusal:
            print(f"  last form refused: {waiting.last_refusal}")
    report = run_report(archive.engine, archive.settings, run.flow_run_id if run else None)
    if report and run is not None:
        flag = "ATTENTION " if report["needs_operator"] else ""
        print(f"  {flag}run {run.flow_run_id}: {report['state']} — {report['note']}")
    failed = last_failure(archive.engine, key)
    if failed is not None:
        print(f"  last failed run {failed[0]}: {failure_reason(archive.engine, failed[0])}")
