"""``brokerflow evaluation``: compute (pure) the quarterly 360-degree evaluation (SPEC §8.2)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli._progress import counting
from brokerflow.kernel.errors import BadInput

app = typer.Typer(no_args_is_help=True)


class ResultFormat(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


@app.command("compute", help="compute a quarter's evaluation (no server needed)")
def compute(
    quarter: Annotated[str, typer.Option(help="YYYYQn, e.g. 2026Q3")],
    data: Annotated[Path, typer.Option(
        metavar="DIR", help="directory with evaluations.csv (or .xlsx)")],
    output: Annotated[ResultFormat, typer.Option("--format")] = ResultFormat.json,
    out: Annotated[Path | None, typer.Option(
        metavar="FILE", help="write here instead of stdout")] = None,
) -> None:
    """Pure computation: no server, no database; prints the result (SPEC §8.2)."""
    from brokerflow.payroll.evaluation import evaluation_from_directory
    from brokerflow.payroll.evaluation_output import result_csv, result_json, write_xlsx

    if output == ResultFormat.xlsx and out is None:
        raise BadInput("--format xlsx needs --out FILE", column="--out")
    with counting("evaluation rows read") as progress:
        result = evaluation_from_directory(quarter=quarter, data_dir=data, progress=progress)
    text = "" if output == ResultFormat.xlsx else (
        json.dumps(result_json(result), ensure_ascii=False, indent=2) + "\n"
        if output == ResultFormat.json else result_csv(result))
    if out is None:
        sys.stdout.write(text)
        return
    try:
        if output == ResultFormat.xlsx:
            write_xlsx(result, out)
        else:
            out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write the result: {exc.strerror or exc}", file=str(out),
                       column="--out") from None
    if output == ResultFormat.xlsx:
        print(f"wrote {out} ({len(result.results)} evaluatees)")
