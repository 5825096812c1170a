"""``brokerflow archive export``: a set of documents an auditor checks without brokerflow
(SPEC §5; ``brokerflow.archive.export``, docs/auditor-export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, signed_in, the_archive
from brokerflow.app.cli._progress import counting


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``archive`` group."""

    @app.command("export", help="write PDFs, manifest, checksums and the covering audit-chain "
                                "slice of a serial range into a new directory, for auditors")
    def export(
        serial_prefix: Annotated[str, typer.Option(
            "--serial-prefix", help="BRANCH[-TYPE[-YYYY[-NNNNNN]]], e.g. SZ01-PAY-2026")],
        out: Annotated[Path, typer.Option(help="a new or empty directory")],
        as_user: AsUser = None,
    ) -> None:
        # imported here: pyHanko (the signature check) costs every other command 0.2 s
        from brokerflow.archive.export import check_out, export_documents, match_prefix

        match_prefix(serial_prefix)  # bad input is refused before anything is opened
        check_out(out)
        archive = the_archive()
        actor = signed_in(archive, as_user)
        with counting("serials exported") as progress:
            report = export_documents(archive, prefix=serial_prefix, out=out, actor=actor,
                                      progress=progress)
        for finding in report.findings:
            print(f"FINDING {finding}")
        print(f"{report.out}: {report.exported} document(s) ({report.stored} stored, "
              f"{report.void} void serial(s)), {report.audit_rows} audit row(s); manifest "
              f"sha256 {report.manifest_sha256}; "
              f"{'OK' if report.ok else f'{len(report.findings)} finding(s)'}")
        if not report.ok:
            raise typer.Exit(1)
