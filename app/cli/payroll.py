"""``brokerflow payroll``: compute (pure), close (the monthly closing), reopen."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import AsUser, signed_in, the_archive
from brokerflow.app.cli._progress import counting
from brokerflow.app.runs import start_deployment
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
    from brokerflow.payroll.inputs import read_state
    from brokerflow.payroll.policy import DEFAULT_POLICY

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
    as_user: AsUser = None,
) -> None:
    """Start the monthly-closing deployment for a branch and month, as an identified user
    with a closing role of that branch (the run records who started it).  The closing uses
    the branch's approved pay rules in force for the month; an admin may give ``--policy``."""
    from brokerflow.app.crm_exports import upload_export
    from brokerflow.kernel.calendar import Month
    from brokerflow.payroll.pay_rules import active_pay_rules, missing_pay_rules_message
    from brokerflow.payroll.policy import load_policy
    from brokerflow.payroll.starts import closing_refusal, issue_start_ticket

    try:
        Month.parse(month)
    except ValueError:
        raise BadInput("month must be YYYY-MM", column="--month") from None
    policy_text = None
    if policy is not None:
        load_policy(policy)  # exit 2 naming the key before anything happens
        policy_text = policy.read_text(encoding="utf-8")
    archive = the_archive(prepare_bucket=data is not None)
    actor = signed_in(archive, as_user)
    refusal = closing_refusal(actor, branch=branch, explicit_policy=policy is not None)
    if refusal is not None:
        raise archive.deny(actor, "close", f"payroll {branch} {month}", refusal)
    if policy_text is None:
        with new_session(archive.engine) as session:
            if active_pay_rules(session, branch=branch, month=month) is None:
                raise BadInput(missing_pay_rules_message(branch, month), column="--policy")
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
    print(f"flow run {start_deployment('monthly-closing/monthly-closing', parameters)}")


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
