"""``brokerflow attribution``: preregister, show, list, flag-malicious (客户归属确认, SPEC §3)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from brokerflow.app.cli._common import (
    AsUser,
    Format,
    NoWait,
    Timeout,
    print_json,
    signed_in,
    the_archive,
)
from brokerflow.app.cli._rebind import add_rebind_command
from brokerflow.app.cli.attribution_import import add_import_commands
from brokerflow.app.run_watch import DEFAULT_TIMEOUT, start_and_wait
from brokerflow.app.runs import refusals, run_report
from brokerflow.approvals.access import attribution_readable
from brokerflow.approvals.attributions import (
    attribution_record,
    find_attributions,
    flag_malicious,
    preregister,
    request_key,
)
from brokerflow.kernel.calendar import Month, month_end
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput, BrokerflowError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import Attribution
from brokerflow.kernel.vocabulary import AttributionStatus

app = typer.Typer(no_args_is_help=True)
FINAL = (AttributionStatus.EFFECTIVE, AttributionStatus.ENDED, AttributionStatus.REJECTED,
         AttributionStatus.RETURNED)


def _visible(actor: UserView, attribution: Attribution) -> bool:
    return attribution_readable(actor, branch=attribution.branch, team=attribution.team,
                                cm_id=attribution.cm_id)


@app.command("preregister", help="预约登记 (back-office support)")
def preregister_client(
    cm: Annotated[str, typer.Option()],
    client_name: Annotated[str, typer.Option()],
    asset_size: Annotated[str, typer.Option()],
    id_number_file: Annotated[str | None, typer.Option(
        "--id-number-file", metavar="FILE",
        help="file holding the 18-digit resident ID ('-': standard input; default: asked "
             "without echo). Never on the command line, where ps and shell history show it; "
             "stored only as a keyed hash + last 4")] = None,
    no_start: Annotated[bool, typer.Option(
        "--no-start", help="only record it; do not start the verification on Prefect")] = False,
    no_wait: NoWait = False,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_user: AsUser = None,
) -> None:
    """Exit 0 once the verification waits for its first signature (printed); the flow's
    refusal exits with its code (``app.run_watch``)."""
    archive = the_archive()
    actor = signed_in(archive, as_user)
    from brokerflow.approvals.staffing_guard import require_staffed
    require_staffed(archive.engine, chain="attribution", branch=actor.branch,
                    submitter_id=actor.user_id)
    id_number = _read_id_number(id_number_file)
    with new_session(archive.engine) as session:
        attribution = preregister(session, registrar=actor, cm_id=cm, client_name=client_name,
                                  id_number=id_number, asset_size=asset_size,
                                  hash_key=archive.settings.id_hash_key)
        session.commit()
    note = (f" — CONFLICT with attribution #{attribution.conflict_with}: the trading dept "
            "manager must resolve it" if attribution.status == AttributionStatus.CONFLICT else "")
    print(f"attribution {attribution.id} {attribution.status}{note}")
    if not no_start:
        assert attribution.id is not None
        start_and_wait(archive, "client-attribution/client-attribution",
                       {"attribution_id": attribution.id},
                       request_key=request_key(attribution.id), no_wait=no_wait,
                       timeout=timeout,
                       status_hint=f"brokerflow attribution show {attribution.id}")


def _read_id_number(source: str | None) -> str:
    """The ID number from a file, standard input, or a prompt that does not echo it."""
    try:
        if source is None and sys.stdin.isatty():
            return str(typer.prompt("client ID number (身份证号)", hide_input=True)).strip()
        if source is None or source == "-":
            return sys.stdin.readline(64).strip()
        with open(source, encoding="utf-8") as handle:
            return handle.readline(64).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the ID number: {exc.__class__.__name__}",
                       file=source, column="--id-number-file") from None


@app.command("show", help="a client's attributions (by account, or #id)")
def show(client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
         as_user: AsUser = None) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        rows = [a for a in find_attributions(session, client_id=client_id) if _visible(actor, a)]
        data = [attribution_record(session, a) for a in rows]
    if not data:
        raise BrokerflowError(f"no attribution of {client_id} that you may see")
    for shown, row in zip(data, rows, strict=True):
        if row.status not in FINAL:
            shown["run"] = run_report(archive.engine, archive.settings, row.flow_run_id)
        assert row.id is not None
        shown.update(refusals(archive.engine, request_key(row.id)))
    print_json(data)


@app.command("list", help="attributions")
def listing(
    cm: Annotated[str | None, typer.Option()] = None,
    month: Annotated[str | None, typer.Option(help="effective in YYYY-MM")] = None,
    state: Annotated[str | None, typer.Option("--status")] = None,
    output: Annotated[Format, typer.Option("--format")] = Format.text,
    as_user: AsUser = None,
) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    window = None
    if month:
        try:
            window = (month_end(Month.parse(month).minus(1), archive.zone),
                      month_end(month, archive.zone))
        except ValueError:
            raise BadInput("month must be YYYY-MM", column="--month") from None
    with new_session(archive.engine) as session:
        rows = [a for a in find_attributions(session, cm_id=cm, status=state,
                                             effective_between=window) if _visible(actor, a)]
        data = [attribution_record(session, a) for a in rows]
    if output == Format.json:
        print_json(data)
        return
    for a in data:
        print(f"{a['id']}\t{a['status']}\t{a['cm_id']}\t{a['client_id'] or '-'}\t"
              f"{a['client_name']}\t{a['id_number']}")


@app.command("flag-malicious", help="恶意开户: the client never counts (trading manager)")
def flag(client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID")],
         reason: Annotated[str, typer.Option()], as_user: AsUser = None) -> None:
    archive = the_archive()
    actor = signed_in(archive, as_user)
    try:
        with new_session(archive.engine) as session:
            flag_malicious(session, client_id=client_id, reason=reason, actor=actor)
            session.commit()
    except AccessDenied as exc:
        archive.log_refusal(actor.user_id, "flag-malicious", target=client_id, reason=str(exc))
        raise
    print(f"client {client_id} flagged as a malicious account opening; it never counts")



add_rebind_command(app, kind="attribution", model=Attribution, request_key=request_key,
                   deployment="client-attribution/client-attribution",
                   parameter="attribution_id", who="the branch's trading manager")
add_import_commands(app)  # import, imports: opening data (app/cli/attribution_import.py)
