"""``brokerflow inbox``: 待我签批 -- the steps the acting user may sign now, with the run's
page in the Prefect UI and the document's on the archive page (SPEC §9)."""

from __future__ import annotations

from typing import Annotated

import typer

from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.app.inbox import waiting_for
from brokerflow.approvals.inbox import inbox_view
from brokerflow.kernel.db import read_session


def inbox(as_user: AsUser = None,
          format: Annotated[Format, typer.Option("--format", help="text or json")] = Format.text,
          ) -> None:
    """List what waits for the acting user's signature (待我签批)."""
    from brokerflow.app.runs import use_local_stack_api
    from brokerflow.approvals.waiting import prefect_ui_url

    archive = the_archive()
    user = signed_in(archive, as_user)
    with read_session(archive.engine) as session:
        items = waiting_for(session, user=user, zone=archive.zone)
    use_local_stack_api()
    rows = inbox_view(items, prefect_ui=prefect_ui_url(), pdf_link=archive.document_link,
                      zone=archive.zone)
    if format == Format.json:
        print_json(rows)
        return
    if not rows:
        print(f"待我签批 / waiting for {user.user_id}: nothing")
        return
    print(f"待我签批 / waiting for {user.user_id}: {len(rows)}")
    for row in rows:
        print(f"- {row['run_name']}\n  step: {row['step_label']} ({row['step']}; "
              f"{row['roles'] or 'submitter'}), waiting since {row['since']}")
        if row["run_url"]:
            print(f"  run:  {row['run_url']}")
        if row["pdf_url"]:
            print(f"  PDF:  {row['pdf_url']}")


def register(app: typer.Typer) -> None:
    app.command("inbox", help="what waits for your signature (待我签批)")(inbox)
