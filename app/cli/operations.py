"""Operations: ``backup``, ``restore`` and ``doctor`` (issue 12, item 6)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, signed_in, the_archive
from brokerflow.app.cli._progress import counting
from brokerflow.kernel.identity import ADMIN_ROLE

KEYS_NOTE = ("The keys (BROKERFLOW_AUDIT_KEY, BROKERFLOW_ID_HASH_KEY, BROKERFLOW_TOTP_KEY, "
             "BROKERFLOW_SECRET_KEY: $BROKERFLOW_HOME/brokerflow.env) are NOT in the backup: "
             "keep them apart, and restore with the same keys, or the audit chain, client ID "
             "hashes and one-time-code seeds cannot be used.")


def backup(
    directory: Annotated[Path, typer.Argument(metavar="DIR",
                                              help="a new (or empty) directory")],
    as_user: AsUser = None,
) -> None:
    """Back up the database (every table) and every document in the store to DIR.

    Role admin.  DIR gets manifest.json (signed: manifest.sig), database/*.jsonl, objects.jsonl
    and blobs/; files 0600.  It is consistent while the stack runs.  Client ID numbers are
    in it as keyed hashes only.
    """
    from brokerflow.app.backup import check_target_directory, make_backup

    check_target_directory(directory)
    archive = the_archive()
    actor = signed_in(archive, as_user)
    if ADMIN_ROLE not in actor.roles:
        raise archive.deny(actor, "backup", "the installation", "needs role admin")
    with counting("objects copied") as progress:
        report = make_backup(archive, directory, actor=actor, progress=progress)
    rows = sum(report.tables.values())
    print(f"backup {directory}: {rows} row(s) in {len(report.tables)} table(s), "
          f"{report.objects} object version(s) ({report.object_bytes:,} bytes) "
          f"in {report.seconds:.1f} s")
    if report.left_out:
        print(f"left out {report.left_out} object(s) stored after the database snapshot")
    for serial in report.mismatched:
        print(f"WARNING {serial}: the stored bytes do not match the index (copied as they "
              "are; run 'brokerflow archive verify')")
    print("the keys are not in the backup: keep brokerflow.env (or your key store) apart")


def restore(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="a backup directory")],
) -> None:
    """Restore a backup onto an EMPTY stack (empty database, empty store).

    Open like the first roster load: the target has no users yet; the backup must verify
    under this installation's BROKERFLOW_AUDIT_KEY (its manifest is signed with it), so
    only the keys' holder can restore.  A damaged or altered backup, a non-empty target or
    another schema revision exits 2 before anything is written; an interrupted restore is
    continued by running it again.
    """
    from brokerflow.app.restore import open_backup, refuse_non_empty_database, restore_backup

    if not directory.is_dir():
        from brokerflow.kernel.errors import BadInput

        raise BadInput("no such backup directory", file=str(directory))
    archive = the_archive(prepare_bucket=True)
    refuse_non_empty_database(archive)
    with counting("objects checked") as progress:
        backup_ = open_backup(directory, progress=progress)
    with counting("objects stored") as progress:
        report = restore_backup(archive, backup_, progress=progress)
    print(f"restored {directory}: {sum(report.tables.values())} row(s) in "
          f"{len(report.tables)} table(s), {report.objects + report.already_stored} object "
          f"version(s) ({report.already_stored} stored by an earlier attempt) "
          f"in {report.seconds:.1f} s")
    print("next: 'brokerflow archive verify' and 'brokerflow audit verify' (as an auditor)")


def doctor(timeout: Annotated[float, typer.Option(
        min=0.5, max=60.0, help="seconds each check may take")] = 5.0) -> None:
    """Check database, document store, Prefect API, workers, fonts and clocks.

    One line per check (OK / WARN / FAIL, with the fix); exit 1 when any check fails."""
    from brokerflow.app.doctor import FAIL, run_checks
    from brokerflow.kernel.settings import load_settings

    results = run_checks(load_settings(check_secrets=False), timeout=timeout)
    for result in results:
        print(result.line(), flush=True)
    failed = sum(r.status == FAIL for r in results)
    print(f"doctor: {len(results) - failed} of {len(results)} checks passed"
          + (f", {failed} failed" if failed else ""))
    if failed:
        raise typer.Exit(1)


def _help(command: Callable[..., None]) -> str:
    """A command's docstring, paragraphs on one line each, then the keys note."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join([*(" ".join(p.split()) for p in paragraphs), KEYS_NOTE])


def register(app: typer.Typer) -> None:
    app.command("backup", short_help="back up database and documents to DIR (role admin; "
                "keys not included)", help=_help(backup))(backup)
    app.command("restore", short_help="restore a backup onto an empty stack (keys not "
                "included)", help=_help(restore))(restore)
    app.command("doctor", short_help="check that this installation is ready (exit 1 on a "
                "FAIL)")(doctor)
