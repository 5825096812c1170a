"""``brokerflow level``: apply, start, list, rebind (职级变动, SPEC §8.3)."""

from __future__ import annotations

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
from brokerflow.app.run_watch import DEFAULT_TIMEOUT, start_and_wait
from brokerflow.app.runs import refusals
from brokerflow.approvals.level_changes import (
    application_refusal,
    change_visible,
    check_level,
    classify_application,
    level_label,
    list_refusal,
    start_refusal,
)
from brokerflow.approvals.level_records import (
    create_level_change,
    current_title,
    get_level_change,
    latest_closing_line,
    list_level_changes,
    open_changes,
    request_key,
    title_history,
)
from brokerflow.archive.service import Archive
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import LevelChange
from brokerflow.kernel.roster import get_user_view, subordinate_ids
from brokerflow.kernel.vocabulary import LevelChangeStatus

app = typer.Typer(no_args_is_help=True)
DEPLOYMENT = "level-change/level-change"


def _start(archive: Archive, change_id: int, *, no_wait: bool, timeout: float) -> None:
    start_and_wait(archive, DEPLOYMENT, {"change_id": change_id},
                   request_key=request_key(change_id), no_wait=no_wait, timeout=timeout,
                   status_hint="brokerflow level list")


def _application(archive: Archive, actor: UserView, *, cm: str, to: str, reason: str,
                 branch: str | None) -> LevelChange:
    """Check an application (who, which CM, which level, on what closing) and record it."""
    with new_session(archive.engine) as session:
        cm_view = get_user_view(session, cm)
    if cm_view is None or (branch is not None and cm_view.branch != branch):
        raise NotFound(f"no CM {cm!r}" + (f" in branch {branch}" if branch else ""))
    refusal = application_refusal(actor, cm=cm_view)
    if refusal is not None:
        raise archive.deny(actor, "apply", f"level change of {cm}", refusal)
    check_level(to)
    with new_session(archive.engine) as session:
        found = latest_closing_line(session, branch=cm_view.branch, cm_id=cm)
        if found is None:
            raise BadInput(f"{cm} has no line in a closing of {cm_view.branch}: an application "
                           "rests on the latest closing's flags", column="--cm")
        month, line = found
        history = title_history(session, branch=cm_view.branch, cm_id=cm)
        if history and history[-1].effective_month > month:
            raise BadInput(f"{cm}'s title changes from {history[-1].effective_month} "
                           f"({history[-1].document}); apply after that month's closing",
                           column="--cm")
        under_way = open_changes(session, branch=cm_view.branch, cm_id=cm)
        if under_way:
            raise BadInput(f"{cm} has level change {under_way[0].id} under way "
                           f"({under_way[0].status})", column="--cm")
        title = (current_title(session, branch=cm_view.branch, cm_id=cm, month=month)
                 or line.get("title") or None)
        asset_level = str(line.get("asset_level") or line.get("level") or "")
        kind = classify_application(title=title, asset_level=asset_level,
                                    flags=set(line.get("flags") or ()), to_title=to)
        change = create_level_change(
            session, branch=cm_view.branch, cm_id=cm, kind=kind,
            from_title=title or asset_level, to_title=to, month=month, reason=reason,
            proposed_by=actor.user_id)
        session.commit()
    return change


@app.command("apply", help="apply for a CM's promotion or trainee conversion (the CM or "
                           "their supervisor)")
def apply(
    cm: Annotated[str, typer.Option(help="the CM (工号)")],
    to: Annotated[str, typer.Option(
        "--to", metavar="LEVEL", help="trainee | assistant | manager | senior | chief")],
    reason: Annotated[str, typer.Option(help="why (申请理由)")],
    branch: Annotated[str | None, typer.Option(help="the CM's branch (default: theirs)")] = None,
    no_start: Annotated[bool, typer.Option(
        "--no-start", help="only record it; start it later with 'level start'")] = False,
    no_wait: NoWait = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_user: AsUser = None,
) -> None:
    """The kind (promotion, 破格 promotion, conversion) follows from the CM's title and the
    flags of the branch's latest closing; the chain runs on Prefect."""
    archive = the_archive()
    actor = signed_in(archive, as_user)
    change = _application(archive, actor, cm=cm, to=to, reason=reason, branch=branch)
    print(f"level change {change.id} submitted: {change.kind} {change.cm_id} "
          f"{level_label(change.from_title)}→{level_label(change.to_title)}")
    if not no_start:
        assert change.id is not None
        _start(archive, change.id, no_wait=no_wait, timeout=timeout)


@app.command("start", help="start the confirmation of a proposed demotion (branch manager)")
def start(change_id: Annotated[int, typer.Argument(metavar="ID")],
          no_wait: NoWait = False, timeout: Timeout = DEFAULT_TIMEOUT,
          as_user: AsUser = None) -> None:
    """A demotion the closing proposed waits for the branch manager to start it; an
    application recorded with --no-start is started by its applicant (or the manager)."""
    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        change = get_level_change(session, change_id=change_id)
    refusal = start_refusal(actor, branch=change.branch, status=change.status,
                            proposed_by=change.proposed_by)
    if refusal is not None:
        raise archive.deny(actor, "start", f"level change {change_id}", refusal)
    if change.status not in (LevelChangeStatus.PROPOSED, LevelChangeStatus.WAITING):
        raise BadInput(f"level change {change_id} is {change.status}: only a proposed or "
                       "waiting change is started", column="ID")
    if change.flow_run_id:
        raise BadInput(f"level change {change_id} is handled by flow run "
                       f"{change.flow_run_id}; a run that died is handed on with 'level "
                       "rebind'", column="ID")
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=actor.user_id, action="level-change-started",
                     request_key=request_key(change_id), details={"status": change.status})
        session.commit()
    _start(archive, change_id, no_wait=no_wait, timeout=timeout)


@app.command("list", help="a branch's level changes and their status")
def listing(branch: Annotated[str | None, typer.Option(help="default: your branch")] = None,
            state: Annotated[str | None, typer.Option("--status")] = None,
            output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    """Branch management and head office see every change of the branch; team leaders those
    of their reporting line; everyone else their own."""
    archive = the_archive()
    actor = signed_in(archive, as_user)
    branch = branch or actor.branch
    refusal = list_refusal(actor, branch=branch)
    if refusal is not None:
        raise archive.deny(actor, "list", f"level changes of {branch}", refusal)
    with new_session(archive.engine) as session:
        changes = list_level_changes(session, branch=branch, status=state)
        below = frozenset(subordinate_ids(session, actor.user_id))
    rows: list[dict[str, Any]] = [
        {"id": c.id, "cm_id": c.cm_id, "kind": c.kind, "from": c.from_title, "to": c.to_title,
         "month": c.month, "status": c.status, "proposed_by": c.proposed_by,
         "effective_month": c.effective_month, "lvl_serial": c.lvl_serial, "reason": c.reason}
        for c in changes if change_visible(actor, branch=c.branch, cm_id=c.cm_id,
                                           subordinates=below)]
    for r in rows:
        r.update(refusals(archive.engine, request_key(int(r["id"]))))
    if output == Format.json:
        print_json(rows)
        return
    for r in rows:
        effective = (f" effective {r['effective_month']} {r['lvl_serial']}"
                     if r["lvl_serial"] else "")
        print(f"{r['id']:>5} {r['cm_id']} {r['kind']} {r['from'] or '-'}→{r['to']} "
              f"[{r['status']}] month {r['month']} by {r['proposed_by']}{effective}")
        print_refusals(r)


add_rebind_command(app, kind="level change", model=LevelChange, request_key=request_key,
                   deployment=DEPLOYMENT, parameter="change_id", who="admin or branch manager")
