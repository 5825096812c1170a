"""What the command groups share: the acting user, the archive, output shapes."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Annotated, Any

import typer

from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.settings import load_settings

AsUser = Annotated[str | None, typer.Option(
    "--as", metavar="USER",
    help="acting user (default $BROKERFLOW_USER); secret in $BROKERFLOW_SECRET")]


class Format(StrEnum):
    text = "text"
    json = "json"


def acting_user(as_user: str | None) -> tuple[str, str]:
    """(user id, secret) of whoever runs the command."""
    user = as_user or os.environ.get("BROKERFLOW_USER", "")
    if not user:
        raise BadInput("no acting user: pass --as USER or set BROKERFLOW_USER", column="--as")
    return user, os.environ.get("BROKERFLOW_SECRET", "")


def the_archive(*, prepare_bucket: bool = False) -> Archive:
    """The archive; the bucket is created or checked only for commands that store objects
    (the others work while the object store is down, as far as they can)."""
    return open_archive(load_settings(), prepare_bucket=prepare_bucket)


def signed_in(archive: Archive, as_user: str | None) -> UserView:
    """The acting user, their secret checked (a failure is logged, exit 3)."""
    return archive.authenticate(*acting_user(as_user))


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


NoWait = Annotated[bool, typer.Option(
    "--no-wait", help="start the run and return at once (fire and forget); by default wait "
    "until it waits for a signature or refuses (SPEC exit codes)")]
Timeout = Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", help="how long to wait for the run (exit 1 after it, the "
    "run going on)")]


def print_refusals(row: dict[str, Any], *, indent: str = "      ") -> None:
    """A listed request's last refused form and last failed run, when it has them (SPEC §10:
    a refusal shows in status commands)."""
    if row.get("last_refusal"):
        print(f"{indent}last form refused: {row['last_refusal']}")
    if row.get("last_failed_run"):
        print(f"{indent}last failed run {row['last_failed_run']}")
