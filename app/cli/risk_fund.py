"""``brokerflow riskfund``: deductions, refunds, balances and client disputes (风险基金,
seed 001 第二十五条; SPEC §8.3).

A deduction is proposed by the branch's branch manager and signed by its finance manager; a
refund is due 6 months after the CM left when no client dispute or incident is open, and is
signed by the finance manager, then the branch manager.  Chains run on Prefect (deployment
``risk-fund``); the closing after approval applies them.  Prefect is imported only to start a
run (``app.runs.start_deployment``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import (
    AsUser,
    Format,
    NoWait,
    Timeout,
    print_json,
    print_refusals,
    signed_in,
    the_archive,
)
from brokerflow.app.cli._rebind import add_rebind_command
from brokerflow.app.cli.archive_holds import report_hold
from brokerflow.app.run_watch import (
    DEFAULT_TIMEOUT,
    RunRefused,
    RunStillGoing,
    start_and_wait,
    watch_run,
)
from brokerflow.app.runs import refusals, start_deployment
from brokerflow.archive.holds import close_case_hold, cm_case_key, open_case_hold
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput, BrokerflowError
from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, UserView, check_branch
from brokerflow.kernel.staff_models import RiskFundMovement
from brokerflow.payroll.risk_fund import (
    CAUSES,
    DISPUTE_KINDS,
    KIND_LABELS,
    cause_label,
    deduction_refusal,
    dispute_refusal,
)
from brokerflow.payroll.risk_fund_records import (
    balance_of,
    clear_dispute,
    create_refund,
    create_refunds,
    due_refunds,
    list_disputes,
    list_movements,
    open_dispute,
    propose_deduction,
    request_key,
)

app = typer.Typer(no_args_is_help=True)
dispute_app = typer.Typer(no_args_is_help=True)
app.add_typer(dispute_app, name="dispute",
              help="client disputes and incidents (客户纠纷/责任事故; trading dept manager)")
DEPLOYMENT = "risk-fund/risk-fund"
REFUND_ROLES = frozenset({"finance_manager", "branch_manager"})  # start refunds
Branch = Annotated[str, typer.Option(help="the branch, e.g. SZ01")]
Today = Annotated[str | None, typer.Option(
    "--today", metavar="YYYY-MM-DD", help="the day refunds are due on (development mode)")]


def _start(archive: Archive, branch: str, movement_id: int, *, no_wait: bool,
           timeout: float) -> str:
    return start_and_wait(archive, DEPLOYMENT, {"movement_id": movement_id},
                          request_key=request_key(movement_id), no_wait=no_wait,
                          timeout=timeout,
                          status_hint=f"brokerflow riskfund list --branch {branch}")


def _today(archive: Archive, text: str | None) -> date:
    """Today in the branch's zone; a fixed day only in development mode."""
    from datetime import datetime

    if not text:
        return datetime.now(archive.zone).date()
    if not archive.settings.dev:
        raise BadInput("--today is refused outside development mode", column="--today")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{text!r} must be YYYY-MM-DD", column="--today") from None


def _may_view(actor: UserView, *, branch: str, cm_id: str | None) -> str | None:
    """None when ``actor`` may see the branch's risk fund (one CM's with ``cm_id``): head
    office, the branch's management, or the CM themself; else why not."""
    if actor.is_head_office:
        return None
    if actor.branch != branch:
        return f"{actor.user_id} is not staff of branch {branch}"
    if actor.has_any(BRANCH_MANAGEMENT_ROLES) or (cm_id and cm_id == actor.user_id):
        return None
    return "needs a management role of the branch, or to be the CM"


def _may_refund(actor: UserView, *, branch: str) -> str | None:
    if actor.branch == branch and actor.has_any(REFUND_ROLES):
        return None
    return f"starting a refund needs role finance_manager or branch_manager in branch {branch}"


def _authorised(branch: str, as_user: str | None,
                refusal: Callable[[UserView], str | None], *, doing: str,
                what: str) -> tuple[Archive, UserView]:
    """The archive and the acting user once ``branch`` is valid and ``refusal(actor)`` has
    no reason against them; else denied (exit 3, logged) as ``doing what``."""
    check_branch(branch)
    archive = the_archive()
    actor = signed_in(archive, as_user)
    reason = refusal(actor)
    if reason is not None:
        raise archive.deny(actor, doing, what, reason)
    return archive, actor


@app.command("deduct", help="propose a deduction from a CM's risk fund (branch manager)")
def deduct(
    branch: Branch,
    cm: Annotated[str, typer.Option(help="the CM (工号)")],
    amount: Annotated[str, typer.Option(help="yuan, at most two decimals, ≤ the balance")],
    reason: Annotated[str, typer.Option(help="what happened (事由)")],
    cause: Annotated[str | None, typer.Option(
        help="one of: " + ", ".join(f"{k} ({v})" for k, v in CAUSES.items()))] = None,
    no_start: Annotated[bool, typer.Option(
        "--no-start", help="only record it; its run is started later")] = False,
    no_wait: NoWait = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_user: AsUser = None,
) -> None:
    """The finance manager signs it on Prefect; the next closing applies it."""
    archive, actor = _authorised(branch, as_user,
                                 lambda actor: deduction_refusal(actor, branch=branch),
                                 doing="propose a risk-fund deduction for", what=cm)
    with new_session(archive.engine) as session:
        movement = propose_deduction(session, branch=branch, cm_id=cm, cause=cause,
                                     amount=amount, reason=reason, actor=actor)
        session.commit()
        assert movement.id is not None
        movement_id = movement.id
        print(f"risk-fund movement {movement_id} proposed: deduction {cm} {movement.amount} "
              f"({cause_label(movement.cause)})")
    try:  # a risk-fund case from the proposal until its chain ends (flows.risk_fund)
        report_hold(open_case_hold(
            archive, case_key=cm_case_key("riskfund", branch, movement_id), kind="riskfund",
            branch=branch, cm_id=cm, reason=movement.reason, actor_id=actor.user_id),
            cm_id=cm)
    except BaseException:  # the run starts even when the store interrupted the holds
        if not no_start:  # (--settle ends them); the store's error is what is reported
            _start(archive, branch, movement_id, no_wait=True, timeout=timeout)
        raise
    if not no_start:
        _start(archive, branch, movement_id, no_wait=no_wait, timeout=timeout)


@app.command("refunds", help="list the refunds due in a branch; --start proposes and starts "
                             "them (what the monthly risk-fund-refunds flow does)")
def refunds(branch: Branch,
            start: Annotated[bool, typer.Option("--start")] = False,
            today: Today = None,
            output: Annotated[Format, typer.Option("--format")] = Format.text,
            no_wait: NoWait = False, timeout: Timeout = DEFAULT_TIMEOUT,
            as_user: AsUser = None) -> None:
    """With --start, each run is waited for in turn (unless --no-wait); the command exits
    with the first refusal's code after listing them all."""
    archive, actor = _authorised(
        branch, as_user, lambda actor: (_may_refund(actor, branch=branch) if start
                                        else _may_view(actor, branch=branch, cm_id=None)),
        doing="start refunds in" if start else "list refunds of", what=branch)
    as_of = _today(archive, today)
    with new_session(archive.engine) as session:
        due = due_refunds(session, branch=branch, today=as_of)
        rows: list[dict[str, Any]] = [
            {"cm_id": d.cm_id, "name": d.name, "balance": f"{d.balance:.2f}",
             "leave_date": str(d.leave_date), "due_date": str(d.due_date)} for d in due]
        created = []
        if start:
            created = [(m.id, m.cm_id) for m in create_refunds(
                session, branch=branch, today=as_of, started_by=actor.user_id)]
            session.commit()
    failures: list[BrokerflowError] = []
    for movement_id, cm_id in created:
        assert movement_id is not None
        for row in rows:
            if row["cm_id"] == cm_id:
                row["movement"] = movement_id
                row["flow_run"] = start_deployment(DEPLOYMENT, {"movement_id": movement_id})
                if no_wait:
                    continue
                try:
                    row["outcome"] = watch_run(archive, row["flow_run"],
                                               request_key=request_key(movement_id),
                                               timeout=timeout)
                except (RunRefused, RunStillGoing) as exc:
                    row["outcome"] = str(exc)
                    failures.append(exc)
    if output == Format.json:
        print_json(rows)
    else:
        if not rows:
            print(f"no refund due in {branch} on {as_of}")
        for row in rows:
            started = (f" → movement {row['movement']}, flow run {row['flow_run']}"
                       if "movement" in row else "")
            print(f"{row['cm_id']} {row['name']} {row['balance']} left {row['leave_date']} "
                  f"due {row['due_date']}{started}")
            if row.get("outcome"):
                print(f"    {row['outcome']}")
    if failures:
        raise failures[0]


@app.command("refund", help="propose and start one CM's refund (finance or branch manager)")
def refund(branch: Branch, cm: Annotated[str, typer.Option(help="the CM (工号)")],
           no_start: Annotated[bool, typer.Option("--no-start")] = False,
           today: Today = None, no_wait: NoWait = False, timeout: Timeout = DEFAULT_TIMEOUT,
           as_user: AsUser = None) -> None:
    """Refused (exit 2) for a CM who has not left, is not due yet, has an open dispute or
    incident, or has a refund or deduction pending."""
    archive, actor = _authorised(branch, as_user,
                                 lambda actor: _may_refund(actor, branch=branch),
                                 doing="start a refund for", what=cm)
    as_of = _today(archive, today)
    with new_session(archive.engine) as session:
        movement = create_refund(session, branch=branch, cm_id=cm, today=as_of,
                                 started_by=actor.user_id)
        session.commit()
        assert movement.id is not None
        movement_id = movement.id
        print(f"risk-fund movement {movement_id} proposed: refund {cm} {movement.amount} "
              f"(left {movement.leave_date}, due {movement.due_date})")
    if not no_start:
        _start(archive, branch, movement_id, no_wait=no_wait, timeout=timeout)


def _movement_row(m: RiskFundMovement) -> dict[str, Any]:
    return {"id": m.id, "cm_id": m.cm_id, "kind": m.kind,
            "kind_label": KIND_LABELS.get(m.kind, m.kind), "cause": m.cause,
            "cause_label": cause_label(m.cause), "amount": m.amount, "status": m.status,
            "proposed_by": m.proposed_by, "rfd_serial": m.rfd_serial,
            "applied_month": m.applied_month, "reason": m.reason,
            "leave_date": str(m.leave_date or ""), "due_date": str(m.due_date or "")}


@app.command("list", help="a branch's risk-fund movements (a CM sees only their own)")
def listing(branch: Branch,
            cm: Annotated[str | None, typer.Option(help="one CM only")] = None,
            output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    archive, _ = _authorised(branch, as_user,
                             lambda actor: _may_view(actor, branch=branch, cm_id=cm),
                             doing="list risk-fund movements of", what=cm or branch)
    with new_session(archive.engine) as session:
        rows = [_movement_row(m) for m in list_movements(session, branch=branch, cm_id=cm)]
    for r in rows:
        r.update(refusals(archive.engine, request_key(int(r["id"]))))
    if output == Format.json:
        print_json(rows)
        return
    for r in rows:
        cause = f" {r['cause_label']}" if r["cause"] else ""
        applied = f" applied {r['applied_month']}" if r["applied_month"] else ""
        print(f"{r['id']:>5} {r['cm_id']} {r['kind']}{cause} {r['amount']} [{r['status']}] "
              f"by {r['proposed_by']} {r['rfd_serial']}{applied}".rstrip())
        print_refusals(r)


@app.command("balance", help="a CM's risk-fund balance, leave date and what is pending")
def balance(branch: Branch, cm: Annotated[str, typer.Option(help="the CM (工号)")],
            output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    archive, _ = _authorised(branch, as_user,
                             lambda actor: _may_view(actor, branch=branch, cm_id=cm),
                             doing="see the risk fund of", what=cm)
    with new_session(archive.engine) as session:
        found = balance_of(session, branch=branch, cm_id=cm)
    if found is None:
        raise BadInput(f"{cm} has no risk-fund balance in branch {branch} (no closing yet)",
                       column="--cm")
    row = {"cm_id": cm, "month": found.month, "balance": f"{found.balance:.2f}",
           "available": f"{found.available:.2f}",
           "pending_deductions": f"{found.pending_deductions:.2f}",
           "pending_refund": found.pending_refund,
           "leave_date": str(found.leave_date or ""), "due_date": str(found.due_date or "")}
    if output == Format.json:
        print_json(row)
        return
    left = f"; left {row['leave_date']}, refund due {row['due_date']}" if found.leave_date else ""
    print(f"{cm}: {row['balance']} after the closing of {found.month}; available for a "
          f"deduction {row['available']} (pending deductions {row['pending_deductions']})"
          + left)


@dispute_app.command("open", help="record a client dispute or incident against a CM")
def dispute_open(branch: Branch, cm: Annotated[str, typer.Option(help="the CM (工号)")],
                 description: Annotated[str, typer.Option(help="what happened")],
                 kind: Annotated[str, typer.Option(
                     help=" | ".join(f"{k} ({v})" for k, v in DISPUTE_KINDS.items()))
                 ] = "dispute",
                 as_user: AsUser = None) -> None:
    """While open it blocks the CM's risk-fund refund."""
    archive, actor = _authorised(branch, as_user,
                                 lambda actor: dispute_refusal(actor, branch=branch),
                                 doing="record a client dispute against", what=cm)
    with new_session(archive.engine) as session:
        dispute = open_dispute(session, branch=branch, cm_id=cm, kind=kind,
                               description=description, actor=actor)
        session.commit()
        print(f"dispute #{dispute.id} opened on {cm} ({DISPUTE_KINDS[kind]}): the refund of "
              "the CM's risk fund waits until it is cleared")
    assert dispute.id is not None
    report_hold(open_case_hold(archive, case_key=cm_case_key("dispute", branch, dispute.id),
                               kind="dispute", branch=branch, cm_id=cm,
                               reason=dispute.description, actor_id=actor.user_id), cm_id=cm)


@dispute_app.command("clear", help="clear a dispute, with a note (trading dept manager)")
def dispute_clear(dispute_id: Annotated[int, typer.Argument(metavar="ID")],
                  note: Annotated[str, typer.Option(help="how it was settled")],
                  as_user: AsUser = None) -> None:
    from brokerflow.kernel.staff_models import ClientDispute

    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        found = session.get(ClientDispute, dispute_id)
        branch = found.branch if found is not None else actor.branch
    refusal = dispute_refusal(actor, branch=branch)
    if refusal is not None:
        raise archive.deny(actor, "clear", f"dispute #{dispute_id}", refusal)
    if found is not None and found.status != "open":  # again: finish an interrupted release
        change = close_case_hold(archive, case_key=cm_case_key("dispute", branch, dispute_id),
                                 actor_id=actor.user_id, reason=found.clearing_note)
        if change.released:
            report_hold(change, cm_id=found.cm_id, closed=True)
            return
    with new_session(archive.engine) as session:
        dispute = clear_dispute(session, dispute_id=dispute_id, note=note, actor=actor)
        session.commit()
        print(f"dispute #{dispute.id} on {dispute.cm_id} cleared")
    report_hold(close_case_hold(archive, case_key=cm_case_key("dispute", dispute.branch,
                                                              dispute_id),
                                actor_id=actor.user_id, reason=dispute.clearing_note),
                cm_id=dispute.cm_id, closed=True)


@dispute_app.command("list", help="a branch's client disputes and incidents")
def dispute_list(branch: Annotated[str | None, typer.Option(
                     help="default: your branch")] = None,
                 state: Annotated[str | None, typer.Option("--status",
                                                           help="open | cleared")] = None,
                 output: Annotated[Format, typer.Option("--format")] = Format.text,
                 as_user: AsUser = None) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    branch = check_branch(branch or actor.branch)
    refusal = _may_view(actor, branch=branch, cm_id=None)
    if refusal is not None:
        raise archive.deny(actor, "list client disputes of", branch, refusal)
    with new_session(archive.engine) as session:
        rows = [{"id": d.id, "cm_id": d.cm_id, "kind": d.kind, "status": d.status,
                 "description": d.description, "opened_by": d.opened_by,
                 "opened_at": d.opened_at.isoformat(), "cleared_by": d.cleared_by,
                 "clearing_note": d.clearing_note}
                for d in list_disputes(session, branch=branch, status=state)]
    if output == Format.json:
        print_json(rows)
        return
    for r in rows:
        print(f"#{r['id']} {r['cm_id']} {r['kind']} [{r['status']}] {r['description']}"
              + (f" — {r['clearing_note']}" if r["clearing_note"] else ""))


add_rebind_command(app, kind="risk-fund movement", model=RiskFundMovement,
                   request_key=request_key, deployment=DEPLOYMENT, parameter="movement_id",
                   who="admin")
