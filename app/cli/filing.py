"""``brokerflow filing``: submit, status, list, sign (报批, SPEC §2)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from brokerflow.app.cli._common import (
    AsUser,
    Format,
    NoWait,
    Timeout,
    acting_user,
    print_json,
    signed_in,
    the_archive,
)
from brokerflow.app.cli._rebind import add_rebind_command
from brokerflow.app.run_watch import DEFAULT_TIMEOUT, start_and_wait
from brokerflow.app.runs import run_report, use_local_stack_api
from brokerflow.approvals.access import filing_readable
from brokerflow.approvals.decisions import load_decisions
from brokerflow.approvals.filings import (
    create_filing,
    get_filing,
    list_filings,
    request_key,
    status_report,
    validate_submission,
)
from brokerflow.approvals.submission import send_form
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import Filing, WaitingStep
from brokerflow.payroll.pay_rules import attach_pay_rules, validate_pay_rules

app = typer.Typer(no_args_is_help=True)


class Choice(StrEnum):
    approve = "approve"
    reject = "reject"
    return_ = "return"


def _check_visible(archive: Archive, actor: UserView, filing: Filing) -> None:
    refusal = filing_readable(actor, branch=filing.branch)
    if refusal is not None:
        raise archive.deny(actor, "read", f"filing {filing.id}", refusal)


@app.command("submit", help="submit a filing request")
def submit(
    branch: Annotated[str, typer.Option()],
    kind: Annotated[str, typer.Option(
        help="marketing_plan | recruitment | assessment | pay_rules")],
    subject: Annotated[str, typer.Option()],
    body: Annotated[str | None, typer.Option(help="the request text")] = None,
    file: Annotated[Path | None, typer.Option(
        help="a UTF-8 text file (the request) or a PDF (attachment)")] = None,
    no_start: Annotated[bool, typer.Option(
        "--no-start", help="only record it; do not start the chain on Prefect")] = False,
    policy: Annotated[Path | None, typer.Option(
        metavar="FILE", help="pay_rules: the policy TOML that takes effect once approved")] = None,
    effective_month: Annotated[str | None, typer.Option(
        metavar="YYYY-MM", help="pay_rules: the first month the policy applies to")] = None,
    no_wait: NoWait = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_user: AsUser = None,
) -> None:
    """Exit 0 once the chain waits for its first signature (printed); the flow's refusal
    exits with its code (``app.run_watch``)."""
    policy_text = _pay_rules_input(kind, policy, effective_month)
    if policy_text is not None and body is None and file is None:
        body = f"报批本团队薪酬办法，自 {effective_month} 起执行（附薪酬办法全文）。"
    if (body is None) == (file is None):
        raise BadInput("give the request as --body TEXT or --file FILE (one of them)",
                       column="--body")
    archive = the_archive(prepare_bucket=True)
    actor = signed_in(archive, as_user)
    from brokerflow.approvals.staffing_guard import require_staffed
    require_staffed(archive.engine, chain="filing", branch=branch, submitter_id=actor.user_id)
    text, attachments = body or "", []
    if file is not None:
        if not file.is_file():
            raise BadInput("no such file", file=str(file))
        data = file.read_bytes()
        if data.startswith(b"%PDF-"):
            validate_submission(branch=branch, kind=kind, subject=subject, body=text,
                                submitter=actor)
            spec = DocumentSpec(branch=branch, doc_type="EXT", subject=f"附件：{subject}"[:200],
                                subject_key="", source=str(file))
            attachments.append(archive.put(data, spec, actor=actor).serial)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput("neither a PDF nor UTF-8 text", file=str(file)) from None
    from brokerflow.kernel.render import check_text_glyphs

    check_text_glyphs({"--subject": subject, "--body" if body is not None else "--file": text},
                      "filing")
    with new_session(archive.engine) as session:
        filing = create_filing(session, branch=branch, kind=kind, subject=subject, body=text,
                               submitter=actor, attachments=attachments)
        if policy_text is not None:
            assert filing.id is not None and effective_month is not None
            attach_pay_rules(session, branch=branch, filing_id=filing.id,
                             policy_text=policy_text, effective_month=effective_month,
                             file=str(policy))
        session.commit()
    print(f"filing {filing.id} submitted" + (
        f" (pay rules effective {effective_month} once approved)" if policy_text else ""))
    if not no_start:
        assert filing.id is not None
        start_and_wait(archive, "filing-chain/filing-chain", {"filing_id": filing.id},
                       request_key=request_key(filing.id), no_wait=no_wait, timeout=timeout,
                       status_hint=f"brokerflow filing status {filing.id}")


def _pay_rules_input(kind: str, policy: Path | None, effective_month: str | None) -> str | None:
    """The validated policy text of a ``pay_rules`` filing (exit 2 before anything is
    written when it is missing or bad); None for other kinds, which take neither option."""
    if kind != "pay_rules":
        if policy is not None or effective_month is not None:
            raise BadInput("--policy and --effective-month are for --kind pay_rules only",
                           column="--policy")
        return None
    if policy is None or effective_month is None:
        raise BadInput("pay rules need --policy FILE (the policy TOML) and "
                       "--effective-month YYYY-MM", column="--policy")
    try:
        text = policy.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("no such file", file=str(policy)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the policy ({exc.__class__.__name__})",
                       file=str(policy)) from None
    validate_pay_rules(text, effective_month=effective_month, file=str(policy))
    return text


@app.command("status", help="where a filing stands")
def status(filing_id: Annotated[int, typer.Argument(metavar="ID")],
           output: Annotated[Format, typer.Option("--format")] = Format.text,
           as_user: AsUser = None) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        filing = get_filing(session, filing_id=filing_id)
        decisions = load_decisions(session, request_key=request_key(filing_id),
                                   revision=filing.revision, zone=archive.zone)
        waiting = session.get(WaitingStep, request_key(filing_id))
    _check_visible(archive, actor, filing)
    report = status_report(filing, decisions, waiting)
    report["run"] = run_report(archive.engine, archive.settings, filing.flow_run_id)
    if output == Format.json:
        print_json(report)
        return
    print(f"filing {filing.id} [{filing.status}] revision {filing.revision}: {filing.subject}")
    print(f"  request {filing.current_serial or '-'}  result {filing.result_serial or '-'}")
    if report["waiting_on"]:
        w = report["waiting_on"]
        print(f"  waiting on {w['step']} ({w['label']}): {', '.join(w['may_sign'])}")
    if report["last_refusal"]:
        print(f"  last form refused: {report['last_refusal']}")
    if report["run"]:
        run = report["run"]
        flag = "ATTENTION " if run["needs_operator"] else ""
        print(f"  {flag}run {filing.flow_run_id}: {run['state']} — {run['note']}")
        if run.get("failure"):
            print(f"  {run['failure']}")
    for d in decisions:
        dept = f" [{d.department}]" if d.department else ""
        print(f"  {d.at} {d.step}{dept} {d.signer_id}: {d.decision} {d.opinion}")


@app.command("list", help="filings of your branch")
def listing(branch: Annotated[str | None, typer.Option()] = None,
            state: Annotated[str | None, typer.Option("--status")] = None,
            as_user: AsUser = None) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        filings = list_filings(session, branch=branch if actor.is_head_office else actor.branch,
                               status=state)
    for f in filings:
        print(f"{f.id}\t{f.branch}\t{f.status}\tr{f.revision}\t{f.current_serial or '-'}\t"
              f"{f.subject}")
    print(f"{len(filings)} filing(s)", file=sys.stderr)


@app.command("sign", help="sign the waiting step (what the Prefect UI form does)")
def sign(
    filing_id: Annotated[int, typer.Argument(metavar="ID")],
    decision: Annotated[Choice, typer.Option()] = Choice.approve,
    opinion: Annotated[str | None, typer.Option()] = None,
    departments: Annotated[str | None, typer.Option(
        help="channel dept: comma-separated countersigners")] = None,
    resubmit: Annotated[bool, typer.Option(
        "--resubmit", help="submitter: resubmit after return")] = False,
    withdraw: Annotated[bool, typer.Option(
        "--withdraw", help="submitter: withdraw after return")] = False,
    subject: Annotated[str | None, typer.Option()] = None,
    body: Annotated[str | None, typer.Option()] = None,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="send the form and return without waiting for the outcome")] = False,
    timeout: Annotated[float, typer.Option(
        help="seconds to wait for the run to take and record the form")] = 120.0,
    code: Annotated[str | None, typer.Option(
        "--code", help="the current one-time code of your authenticator (signatures need it "
        "outside development mode; asked for when omitted on a terminal)")] = None,
    as_user: AsUser = None,
) -> None:
    """The signer's secret is checked here first (exit 3, nothing sent); the form then goes to
    the run (``approvals.submission.send_form``): exit 0 when counted, 3 when refused.  The
    form carries the one-time code (the static secret only in development mode)."""
    use_local_stack_api()
    user, secret = acting_user(as_user)
    archive = the_archive()
    archive.authenticate(user, secret)
    if code is None and not archive.settings.dev:
        if not sys.stdin.isatty():
            raise BadInput("a signature needs --code (the one-time code of your "
                           "authenticator; enrol with 'brokerflow roster totp USER')",
                           column="--code")
        code = str(typer.prompt("one-time code", hide_input=True))
    with new_session(archive.engine) as session:
        filing = get_filing(session, filing_id=filing_id)
    if not filing.flow_run_id:
        raise BadInput(f"filing {filing_id} has no running chain", column="ID")
    run_input: dict[str, Any] = {"signer": user, "secret": code if code is not None else secret}
    if resubmit or withdraw:
        run_input |= {"action": "withdraw" if withdraw else "resubmit",
                      "subject": subject or "", "body": body or ""}
    else:
        run_input |= {"decision": str(decision), "opinion": opinion or ""}
        if departments is not None:
            run_input["countersign_departments"] = [
                d.strip() for d in departments.split(",") if d.strip()]
    sent = send_form(archive.engine, flow_run_id=UUID(filing.flow_run_id),
                     request_key=request_key(filing_id), run_input=run_input,
                     wait=not no_wait, timeout=timeout)
    if no_wait:
        print(f"form sent to filing {filing_id} (step {sent.step}); see "
              f"'brokerflow filing status {filing_id}'")
    else:
        print(f"filing {filing_id}: your form on step {sent.step} was counted ({sent.outcome})")



add_rebind_command(app, kind="filing", model=Filing, request_key=request_key,
                   deployment="filing-chain/filing-chain", parameter="filing_id",
                   who="brokerage office")
