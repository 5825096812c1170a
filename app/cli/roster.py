"""``brokerflow roster``: load users from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, acting_user
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.roster import authenticate, load_roster, roster_is_empty
from brokerflow.kernel.settings import load_settings

app = typer.Typer(no_args_is_help=True)


@app.command("load", help="load users from CSV or YAML")
def load(file: Annotated[Path, typer.Argument(metavar="FILE")], as_user: AsUser = None) -> None:
    """The first load into an empty database is open; later loads need role ``admin``."""
    engine = open_database(load_settings().database_url)
    with new_session(engine) as session:
        actor = None
        if not roster_is_empty(session):
            user, secret = acting_user(as_user)
            actor = authenticate(session, user_id=user, secret=secret)
        rows = load_roster(session, path=file, actor=actor)
        session.commit()
    print(f"loaded {len(rows)} users from {file}")
