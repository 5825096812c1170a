"""``brokerflow audit``: verify the hash-chained audit log."""

from __future__ import annotations

import typer

from brokerflow.app.cli._common import AsUser, the_archive
from brokerflow.app.cli.archive import require_auditor
from brokerflow.kernel.audit import audit_rows, verify_audit
from brokerflow.kernel.db import new_session

app = typer.Typer(no_args_is_help=True)


@app.command("verify", help="detect edited, deleted or reordered audit rows")
def verify(as_user: AsUser = None) -> None:
    archive = the_archive()
    require_auditor(archive, as_user, "audit-verify")
    with new_session(archive.engine) as session:
        problems = verify_audit(session)
        count = audit_rows(session)
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"audit log: {count} row(s), {'intact' if not problems else 'BROKEN'}")
    if problems:
        raise typer.Exit(1)
