"""``brokerflow archive hold|release|holds``: legal holds (SPEC §5; docs/legal-holds.md).

Manual holds are placed and lifted by the compliance dept (合规部); a document an open case
(client dispute, investigation, risk-fund deduction) holds cannot be released by hand (exit
3, logged).  ``holds`` lists the active holds for compliance and auditors; ``--settle``
finishes holds an object-store outage interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.archive.holds import (
    HoldChange,
    active_holds,
    hold_document,
    hold_refusal,
    release_document,
    settle_holds,
)
from brokerflow.kernel.identity import may_audit

Serial = Annotated[str, typer.Argument(metavar="SERIAL")]
Reason = Annotated[str, typer.Option(help="why (recorded in the audit log)")]


def hold(serial: Serial, reason: Reason, as_user: AsUser = None) -> None:
    """Place a legal hold on one document (compliance)."""
    archive = the_archive()
    change = hold_document(archive, serial=serial, actor=signed_in(archive, as_user),
                           reason=reason)
    if change.placed:
        print(f"{change.placed[0]} held ({change.case_key})")
    else:
        print(f"{serial} is held by hand already ({change.case_key})", file=sys.stderr)


def release(serial: Serial, reason: Reason, as_user: AsUser = None) -> None:
    """Lift a manual legal hold (compliance); refused while an open case holds it."""
    archive = the_archive()
    change = release_document(archive, serial=serial, actor=signed_in(archive, as_user),
                              reason=reason)
    if not change.released:
        print(f"{serial} has no manual hold: nothing to release", file=sys.stderr)
        return
    kept = change.still_held.get(change.released[0])
    print(f"{change.released[0]} released ({change.case_key or 'no record'})"
          + (f"; still held by {', '.join(kept)}" if kept else ""))


def holds(serial: Annotated[str | None, typer.Option(help="one document only")] = None,
          settle: Annotated[bool, typer.Option(
              "--settle", help="first finish holds an object-store outage interrupted")
          ] = False,
          output: Annotated[Format, typer.Option("--format")] = Format.text,
          as_user: AsUser = None) -> None:
    """The active legal holds: document, case, reason, who placed it and when."""
    archive = the_archive()
    actor = signed_in(archive, as_user)
    if hold_refusal(actor) is not None and may_audit(actor) is not None:
        raise archive.deny(actor, "list holds", serial or "archive",
                           "needs the compliance role, head office or role admin")
    if settle:
        change = settle_holds(archive, actor_id=actor.user_id)
        print(f"settled: {len(change.placed)} hold(s) placed, {len(change.released)} "
              f"released" + (f"; objects missing: {', '.join(change.missing)}"
                             if change.missing else ""), file=sys.stderr)
    rows = active_holds(archive, serial=serial)
    if output == Format.json:
        print_json([{"serial": h.serial, "case": h.case_key, "kind": h.kind, "cm_id": h.cm_id,
                     "reason": h.reason, "placed_by": h.placed_by,
                     "placed_at": h.placed_at.isoformat()} for h in rows])
        return
    for h in rows:
        when = h.placed_at.astimezone(archive.zone).strftime("%Y-%m-%d %H:%M")
        print(f"{h.serial}\t{h.case_key}\t{h.cm_id or '-'}\t{h.placed_by}\t{when}\t{h.reason}")
    print(f"{len(rows)} active hold(s)", file=sys.stderr)


def report_hold(change: HoldChange, *, cm_id: str, closed: bool = False) -> None:
    """One line (on stderr) about what a case's opening or closing did to the holds."""
    if closed:
        kept = f"; {len(change.still_held)} stay held by other cases" if change.still_held else ""
        print(f"legal hold {change.case_key} ended: {len(change.released)} document(s) of "
              f"{cm_id} released{kept}", file=sys.stderr)
        return
    missing = (f"; objects missing (see archive verify): {', '.join(change.missing)}"
               if change.missing else "")
    print(f"legal hold {change.case_key}: {len(change.placed)} document(s) of {cm_id} held, "
          f"and every document archived for {cm_id} while it is open{missing}",
          file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``archive`` group."""
    app.command("hold", help="place a legal hold on a document (compliance)")(hold)
    app.command("release", help="lift a manual legal hold (compliance)")(release)
    app.command("holds", help="list active legal holds (compliance, auditors)")(holds)
