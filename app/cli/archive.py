"""``brokerflow archive``: put, get, search, verify, rebuild-index (SPEC §5, §6.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli import archive_export, archive_holds
from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.app.cli._progress import counting
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import ADMIN_ROLE, may_audit
from brokerflow.kernel.models import ArchiveEntryPublic
from brokerflow.kernel.roster import roster_is_empty

app = typer.Typer(no_args_is_help=True)


def require_auditor(archive: Archive, as_user: str | None, action: str) -> None:
    """Verifying and rebuilding is for head office or an admin (a refusal is logged)."""
    actor = signed_in(archive, as_user)
    refusal = may_audit(actor)
    if refusal is not None:
        raise archive.deny(actor, action, "archive", refusal)


@app.command("put", help="archive an outside PDF")
def put(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    branch: Annotated[str, typer.Option()],
    doc_type: Annotated[str, typer.Option("--type")],
    subject: Annotated[str, typer.Option()],
    cm: Annotated[str | None, typer.Option()] = None,
    month: Annotated[str | None, typer.Option(
        help="YYYY-MM the document is about (default: this month)")] = None,
    as_user: AsUser = None,
) -> None:
    if not file.is_file():
        raise BadInput("no such file", file=str(file))
    archive = the_archive(prepare_bucket=True)
    actor = signed_in(archive, as_user)
    spec = DocumentSpec(branch=branch, doc_type=doc_type, subject=subject, subject_key="",
                        cm_id=cm, month=month, source=str(file))
    result = archive.put(file.read_bytes(), spec, actor=actor)
    if not result.created:
        print(f"already archived as {result.serial}; nothing new stored", file=sys.stderr)
    print(result.serial)


@app.command("get", help="fetch a document by serial")
def get(serial: Annotated[str, typer.Argument(metavar="SERIAL")],
        out: Annotated[Path | None, typer.Option()] = None, as_user: AsUser = None) -> None:
    archive = the_archive()
    entry, data = archive.get(serial, actor=signed_in(archive, as_user))
    if out is not None:
        out.write_bytes(data)
        print(f"{entry.serial}: wrote {out} ({len(data)} bytes, sha256 {entry.sha256})")
    elif sys.stdout.isatty():
        raise BadInput("refusing to write a PDF to a terminal; use --out FILE", column="--out")
    else:
        sys.stdout.buffer.write(data)


@app.command("search", help="search the index")
def search(
    serial: Annotated[str | None, typer.Option(help="a whole serial, or a prefix of one")] = None,
    doc_type: Annotated[str | None, typer.Option("--type")] = None,
    cm: Annotated[str | None, typer.Option()] = None,
    month: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option()] = None,
    output: Annotated[Format, typer.Option("--format")] = Format.text,
    as_user: AsUser = None,
) -> None:
    archive = the_archive()
    rows = archive.search(SearchFilter(serial=serial, doc_type=doc_type, cm_id=cm, month=month,
                                       status=status), actor=signed_in(archive, as_user))
    if output == Format.json:
        print_json([ArchiveEntryPublic.model_validate(e).model_dump(mode="json") for e in rows])
        return
    for e in rows:
        print(f"{e.serial}\t{e.doc_type}\t{e.month}\t{e.cm_id or '-'}\t{e.status}\t{e.subject}")
    print(f"{len(rows)} document(s)", file=sys.stderr)


@app.command("verify", help="re-hash stored objects against the index, check their retention "
                             "(and signatures)")
def verify(
    signatures: Annotated[bool, typer.Option(
        "--signatures", help="also validate every PDF's PAdES signature offline")] = False,
    as_user: AsUser = None,
) -> None:
    archive = the_archive()
    require_auditor(archive, as_user, "verify")
    with counting("documents verified") as progress:
        report = archive.verify(progress=progress, signatures=signatures)
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    if report.markers_written:
        print(f"wrote {report.markers_written} void marker(s) the bucket lacked")
    print(f"checked {report.checked} document(s)"
          + (f", {report.signatures_checked} signature(s)" if signatures else "")
          + (f", {report.inputs_checked} input version(s)" if report.inputs_checked else "")
          + f": {'OK' if report.ok else f'{len(report.problems)} problem(s)'}")
    if not report.ok:
        raise typer.Exit(1)


@app.command("rebuild-index", help="rebuild the index from the bucket alone")
def rebuild_index(as_user: AsUser = None) -> None:
    archive = the_archive()
    with new_session(archive.engine) as session:
        empty = roster_is_empty(session)
    if not empty:  # disaster recovery on an empty database is open, like the first roster load
        require_auditor(archive, as_user, "rebuild-index")
    with counting("objects read") as progress:
        report = archive.rebuild_index(progress=progress)
    for skipped in report.skipped:
        print(f"SKIPPED {skipped}")
    print(f"indexed {report.indexed} document(s); {report.inputs} input version(s) found apart; "
          f"{report.voids_kept} void number(s) kept; "
          f"{report.voided_gaps} missing number(s) voided"
          + (f"; {report.voided_duplicates} late duplicate upload(s) voided"
             if report.voided_duplicates else ""))


keys = typer.Typer(no_args_is_help=True, help="the branch archive's signing key")
app.add_typer(keys, name="keys")


@keys.command("rotate", help="issue a new signing key and certificate under the same root")
def rotate_keys(as_user: AsUser = None) -> None:
    archive = the_archive(prepare_bucket=False)
    actor = signed_in(archive, as_user)
    if ADMIN_ROLE not in actor.roles:
        raise archive.deny(actor, "rotate", "archive signing key", "this needs the admin role")
    from brokerflow.archive.signing import load_signer, rotate_signing_key
    from brokerflow.kernel.audit import append_audit

    before = load_signer(archive.settings).fingerprint
    path = rotate_signing_key(archive.settings)
    after = load_signer(archive.settings).fingerprint
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=actor.user_id, action="archive-key-rotated",
                     request_key="archive:signing-key",
                     details={"before": before, "after": after})
        session.commit()
    print(f"new signing certificate {path} ({after[:16]}…); documents signed before keep "
          "validating against the same root")


# the group's other commands, one module each: legal holds, the auditors' export
archive_holds.register(app)
archive_export.register(app)
