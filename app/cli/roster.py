"""``brokerflow roster``: load users from a file; disable a user who left."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, acting_user
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.roster import check_secret, disable_user, load_roster, roster_is_empty
from brokerflow.kernel.settings import load_settings

app = typer.Typer(no_args_is_help=True)


@app.command("load", help="load users from CSV (UTF-8 or GBK), XLSX or YAML; English or "
             "Chinese headers and role names")
def load(file: Annotated[Path, typer.Argument(metavar="FILE")], as_user: AsUser = None) -> None:
    """The first load into an empty database is open; later loads need role ``admin``."""
    engine = open_database(load_settings().database_url)
    with new_session(engine) as session:
        empty = roster_is_empty(session)
    actor = None
    if not empty:
        user_id, secret = acting_user(as_user)
        actor = check_secret(engine, user_id=user_id, secret=secret, channel="cli")
    with new_session(engine) as session:
        rows = load_roster(session, path=file, actor=actor)
        session.commit()
    print(f"loaded {len(rows)} users from {file}")
    from brokerflow.app.cli.branch import warn_unstaffed

    warn_unstaffed(engine)  # chains a branch cannot complete (SPEC §10)


@app.command("disable", help="a user left: from --left on no login, signature or read (admin)")
def disable(
    user: Annotated[str, typer.Argument(metavar="USER")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit log)")],
    left: Annotated[str | None, typer.Option(
        "--left", metavar="YYYY-MM-DD", help="the day they left (default today)")] = None,
    as_user: AsUser = None,
) -> None:
    try:
        left_on = date.fromisoformat(left) if left else date.today()
    except ValueError:
        raise BadInput(f"not a date: {left!r} (expected YYYY-MM-DD)", column="--left") from None
    engine = open_database(load_settings().database_url)
    user_id, secret = acting_user(as_user)
    actor = check_secret(engine, user_id=user_id, secret=secret, channel="cli")
    with new_session(engine) as session:
        disable_user(session, user_id=user, left_on=left_on, actor=actor, reason=reason)
        session.commit()
    print(f"{user} left on {left_on.isoformat()}: no login, signature or read from that day")



@app.command("totp", help="enrol USER's authenticator for signatures (shown once)")
def totp(
    user: Annotated[str, typer.Argument(metavar="USER")],
    as_user: AsUser = None,
) -> None:
    """A new one-time-code seed for USER (themself, or an admin for anyone): printed once as
    a provisioning URI and a QR code to scan; stored only encrypted; an earlier seed stops
    working.  Outside development mode every signature needs a current code."""
    import segno

    from brokerflow.kernel.totp import enrol

    settings = load_settings()
    engine = open_database(settings.database_url)
    user_id, secret = acting_user(as_user)
    actor = check_secret(engine, user_id=user_id, secret=secret, channel="cli")
    with new_session(engine) as session:
        uri = enrol(session, user_id=user, actor=actor, key=settings.totp_key)
        session.commit()
    print(f"one-time codes for {user}: scan the code below, or enter this URI in the "
          "authenticator app; it is shown only now")
    print(uri)
    qr = segno.make(uri, error="m")
    try:
        qr.terminal(compact=True)  # Unicode half blocks
    except UnicodeEncodeError:  # a terminal without UTF-8: ANSI colours instead
        qr.terminal()
