"""``brokerflow attribution import`` and ``imports``: a branch's opening data (SPEC §10) -- its
existing effective attributions, or its opening carried state -- imported once as one batch
that the trading dept manager reviews and the branch manager approves on Prefect (deployment
``attribution-import``).  The file is checked completely before anything is written."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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
from brokerflow.approvals.opening_import import (
    ATTRIBUTIONS,
    batch_headline,
    branch_cms,
    import_record,
    list_imports,
    submit_import,
)
from brokerflow.approvals.opening_import import request_key as import_key
from brokerflow.approvals.opening_import_rows import (
    AttributionRow,
    StateRow,
    read_attributions,
    read_state,
)
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import ADMIN_ROLE, BRANCH_MANAGEMENT_ROLES, UserView, check_branch
from brokerflow.kernel.opening_models import OpeningImport

DEPLOYMENT = "attribution-import/attribution-import"


class Kind(StrEnum):
    attributions = "attributions"
    state = "state"


def import_refusal(actor: UserView, *, branch: str) -> str | None:
    """None when ``actor`` may import opening data of ``branch``: its trading dept manager,
    or an admin; else why not."""
    if ADMIN_ROLE in actor.roles:
        return None
    if actor.branch == branch and "trading_manager" in actor.roles:
        return None
    return f"importing opening data needs role trading_manager in branch {branch}, or admin"


def _may_list(actor: UserView, branch: str) -> bool:
    return (actor.is_head_office or ADMIN_ROLE in actor.roles
            or (actor.branch == branch and actor.has_any(BRANCH_MANAGEMENT_ROLES)))


def _digest(path: Path, file: str) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise BadInput(f"cannot read the file ({exc.__class__.__name__})", file=file) from None


def add_import_commands(app: typer.Typer) -> None:
    """Register ``import``, ``imports`` and ``import-rebind`` on the ``attribution`` command
    group."""
    @app.command("import", help="import a branch's existing attributions (or, --kind state, "
                                "its opening carried state) as one batch to sign "
                                "(trading dept manager or admin)")
    def import_file(
        file: Annotated[str, typer.Argument(metavar="FILE", help="CSV (UTF-8 or GBK) or XLSX; "
                                            "'brokerflow templates DIR' writes a template")],
        branch: Annotated[str, typer.Option(help="the branch going live, e.g. SZ01")],
        kind: Annotated[Kind, typer.Option(help="attributions (客户归属) or state "
                                                "(期初结转状态)")] = Kind.attributions,
        no_start: Annotated[bool, typer.Option(
            "--no-start", help="only record the batch; its run is started later")] = False,
        no_wait: NoWait = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
        as_user: AsUser = None,
    ) -> None:
        check_branch(branch)
        archive = the_archive()
        actor = signed_in(archive, as_user)
        reason = import_refusal(actor, branch=branch)
        if reason is not None:
            raise archive.deny(actor, "import opening data of", branch, reason)
        from brokerflow.kernel.render import document_coverage

        path = Path(file)
        today = datetime.now(archive.zone).date()
        with new_session(archive.engine) as session:
            cms = branch_cms(session, branch=branch, today=today)
        rows: Sequence[AttributionRow] | Sequence[StateRow]
        if kind == Kind.attributions:
            rows = read_attributions(
                path, file=file, branch=branch, cms=cms, today=today,
                hash_key=archive.settings.id_hash_key, coverage=document_coverage())
        else:
            rows = read_state(path, file=file, branch=branch, cms=cms, today=today)
        digest = _digest(path, file)
        with new_session(archive.engine) as session:
            batch = submit_import(session, branch=branch, kind=kind.value, file_name=path.name,
                                  sha256=digest, rows=rows, submitted_by=actor.user_id)
            session.commit()
        unit = "clients" if kind == ATTRIBUTIONS else "CMs"
        print(f"opening import {batch.id} waiting: {batch_headline(batch)}, {len(rows)} {unit}; "
              "the trading dept manager reviews it, the branch manager approves it")
        if not no_start:
            from brokerflow.approvals.opening_import import request_key

            assert batch.id is not None
            start_and_wait(archive, DEPLOYMENT, {"import_id": batch.id},
                           request_key=request_key(batch.id), no_wait=no_wait,
                           timeout=timeout, status_hint="brokerflow attribution imports")

    @app.command("imports", help="opening import batches and their status")
    def imports(
        branch: Annotated[str | None, typer.Option(help="only this branch")] = None,
        output: Annotated[Format, typer.Option("--format")] = Format.text,
        as_user: AsUser = None,
    ) -> None:
        if branch is not None:
            check_branch(branch)
        archive = the_archive()
        actor = signed_in(archive, as_user)
        with new_session(archive.engine) as session:
            data = [import_record(b) for b in list_imports(session, branch=branch)
                    if _may_list(actor, b.branch)]
        from brokerflow.app.runs import refusals
        from brokerflow.approvals.opening_import import request_key

        for b in data:  # the last form refused, the last failed run (SPEC §10)
            b.update(refusals(archive.engine, request_key(int(str(b["id"])))))
        if output == Format.json:
            print_json(data)
            return
        for b in data:
            print(f"{b['id']}\t{b['branch']}\t{b['kind']}\t{b['status']}\t{b['rows']}\t"
                  f"{b['list_serial'] or '-'}\t{b['file']}")
            print_refusals(b, indent="\t")

    add_rebind_command(app, kind="opening import", model=OpeningImport, request_key=import_key,
                       deployment=DEPLOYMENT, parameter="import_id", who="trading dept manager",
                       name="import-rebind")
