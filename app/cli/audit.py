"""``brokerflow audit``: verify the keyed, anchored audit log and the decisions it covers."""

from __future__ import annotations

import typer

from brokerflow.app.cli._common import AsUser, the_archive
from brokerflow.app.cli.archive import require_auditor
from brokerflow.approvals.decisions import cross_check_decisions
from brokerflow.archive.anchors import read_anchors, write_checkpoint
from brokerflow.kernel.audit import audit_rows, verify_against_anchors, verify_audit
from brokerflow.kernel.db import read_session
from brokerflow.kernel.errors import StorageError

app = typer.Typer(no_args_is_help=True)


@app.command("verify", help="detect edited, deleted, reordered or rewritten audit rows")
def verify(as_user: AsUser = None) -> None:
    """The chain (keyed), every decision against its audit row, the chain against the
    checkpoints in the bucket; an intact log gets a new checkpoint."""
    archive = the_archive()
    require_auditor(archive, as_user, "audit-verify")
    try:
        anchors = read_anchors(archive)
    except StorageError as exc:
        anchors, unreachable = [], str(exc)
    else:
        unreachable = ""
    with read_session(archive.engine) as session:
        problems = [*verify_audit(session), *cross_check_decisions(session),
                    *verify_against_anchors(session, anchors)]
        count = audit_rows(session)
    for problem in problems:
        print(f"PROBLEM {problem}")
    if unreachable:
        print(f"PROBLEM the checkpoints in the bucket could not be read: {unreachable}")
    print(f"audit log: {count} row(s), {len(anchors)} checkpoint(s), "
          f"{'intact' if not problems and not unreachable else 'BROKEN'}")
    if problems or unreachable:
        raise typer.Exit(1)
    print(f"checkpoint {write_checkpoint(archive)}")
