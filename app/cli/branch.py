"""``brokerflow branch``: the branch registry (code → full name, address, phone) and the
check that the roster can complete every approval chain of every branch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from brokerflow.app.cli._common import AsUser, Format, acting_user, print_json
from brokerflow.kernel.db import new_session, open_database, read_session
from brokerflow.kernel.identity import ADMIN_ROLE, HEAD_OFFICE, UserView
from brokerflow.kernel.roster import check_secret
from brokerflow.kernel.settings import load_settings

app = typer.Typer(no_args_is_help=True)


def _signed_in(as_user: str | None) -> tuple[Engine, UserView]:
    engine = open_database(load_settings().database_url)
    user_id, secret = acting_user(as_user)
    return engine, check_secret(engine, user_id=user_id, secret=secret, channel="cli")


@app.command("load", help="load branches (code, full name, address, phone) from CSV or XLSX "
                          "(admin)")
def load(file: Annotated[Path, typer.Argument(metavar="FILE")], as_user: AsUser = None) -> None:
    """Headers in English (code,name,address,phone) or Chinese (营业部代码,营业部全称,地址,电话);
    a branch already registered is updated.  Nothing is written when any row is bad."""
    from brokerflow.kernel.branches import load_branches, load_refusal, parse_branches, refuse

    engine, actor = _signed_in(as_user)
    refusal = load_refusal(actor)
    if refusal is not None:
        raise refuse(engine, actor, refusal)
    rows = parse_branches(file)
    with new_session(engine) as session:
        added, changed = load_branches(session, rows=rows, actor=actor, file=file.name)
        session.commit()
    print(f"loaded {len(rows)} branches from {file} ({len(added)} new, {len(changed)} changed)")


@app.command("list", help="the registered branches")
def listing(output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    from brokerflow.kernel.branches import list_branches

    engine, _ = _signed_in(as_user)
    with read_session(engine) as session:
        branches = list_branches(session)
    if output == Format.json:
        print_json([{"code": b.code, "name": b.name, "address": b.address, "phone": b.phone}
                    for b in branches])
        return
    if not branches:
        print("no branches registered (brokerflow branch load FILE)")
    for b in branches:
        print("\t".join(x for x in (b.code, b.name, b.address, b.phone) if x))


@app.command("check", help="chains the roster cannot complete, per branch (exit 1: a "
                           "registered branch or head office lacks a signer)")
def check(as_user: AsUser = None) -> None:
    """Admins and head office see every branch; others their own branch and head office."""
    from brokerflow.approvals.staffing_guard import branch_gaps

    engine, actor = _signed_in(as_user)
    with read_session(engine) as session:
        gaps, registered = branch_gaps(session)
    if not (actor.is_head_office or ADMIN_ROLE in actor.roles):
        gaps = [g for g in gaps if g.branch in (actor.branch, HEAD_OFFICE)]
    for gap in gaps:
        print(gap.describe())
    blocking = [g for g in gaps if g.branch in registered or g.branch == HEAD_OFFICE]
    if not gaps:
        print("every chain can be completed for every branch")
    elif blocking:
        raise typer.Exit(1)


def warn_unstaffed(engine: Engine) -> None:
    """After a roster load: every chain a branch cannot complete, as warnings (stderr)."""
    from brokerflow.approvals.staffing_guard import branch_gaps

    with read_session(engine) as session:
        gaps, _ = branch_gaps(session)
    for gap in gaps:
        print(f"warning: {gap.describe()}", file=sys.stderr)
