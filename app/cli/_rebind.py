"""``rebind``, the same command in the filing and attribution groups: hand a request whose
flow run died to a new run (``app.runs.rebind_dead_run``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from brokerflow.app.cli._common import AsUser, NoWait, Timeout, signed_in, the_archive
from brokerflow.app.run_watch import DEFAULT_TIMEOUT, wait_and_report
from brokerflow.app.runs import rebind_dead_run

if TYPE_CHECKING:  # the approval engine imports Prefect: not at the command line's start
    from brokerflow.approvals.signing import RunBound


def add_rebind_command(app: typer.Typer, *, kind: str, model: type[RunBound],
                       request_key: Callable[[int], str], deployment: str, parameter: str,
                       who: str, name: str = "rebind") -> None:
    """Register ``rebind ID --reason`` (or ``name ID --reason``) for ``kind`` requests on
    ``app``."""

    @app.command(name, help=f"hand a {kind} whose run died to a new run ({who})")
    def rebind(key: Annotated[int, typer.Argument(metavar="ID")],
               reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
               no_wait: NoWait = False, timeout: Timeout = DEFAULT_TIMEOUT,
               as_user: AsUser = None) -> None:
        """The new run continues from the decisions recorded so far; waited for like a
        start (``app.run_watch``)."""
        archive = the_archive()
        run = rebind_dead_run(archive, actor=signed_in(archive, as_user), model=model, key=key,
                              kind=kind, request_key=request_key(key), deployment=deployment,
                              parameters={parameter: key}, reason=reason)
        print(f"{kind} {key} handed to flow run {run}", flush=True)
        if not no_wait:
            wait_and_report(archive, run, request_key=request_key(key), timeout=timeout)
