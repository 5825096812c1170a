"""``brokerflow templates DIR``: blank input tables to fill in (CSV and XLSX, Chinese
headers, one sample row each); the building is ``kernel.table_templates``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.files import write_atomically


def templates(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="where to write them (made if absent)")],
    force: Annotated[bool, typer.Option("--force", help="overwrite files already there")] = False,
) -> None:
    """Write <table>.csv and <table>.xlsx for every input table (roster, branches, staff,
    clients, attributions, opening_state) to DIR: Chinese headers, one sample row; the CSV
    in UTF-8 with a BOM (spreadsheets open it as such), the XLSX with a pick list on every
    enumeration column and a sheet 说明 describing each column.  Existing files are kept
    unless --force."""
    from brokerflow.kernel.table_templates import template_files

    if directory.exists() and not directory.is_dir():
        raise BadInput("exists and is not a directory", file=str(directory), column="DIR")
    files = template_files()
    there = [name for name in files if (directory / name).exists()]
    if there and not force:
        raise BadInput(f"would overwrite {', '.join(there)}; nothing written (use --force to "
                       "overwrite)", file=str(directory), column="DIR")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot make the directory: {exc.strerror}", file=str(directory),
                       column="DIR") from None
    for name, data in files.items():
        write_atomically(directory / name, data, column="DIR")
    print(f"wrote {len(files)} templates to {directory}: {', '.join(files)}")


def register(app: typer.Typer) -> None:
    """Add ``templates`` to the command line."""
    app.command("templates", short_help="write blank input tables to fill in (CSV and XLSX, "
                "Chinese headers)")(templates)
