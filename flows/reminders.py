"""催办: a scheduled flow that records a reminder (and a Prefect artifact) for every approval
step waiting longer than the policy allows.  Nothing is ever approved automatically."""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from datetime import UTC, datetime, timedelta

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from brokerflow.approvals.reminders import record_reminders
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.settings import load_settings


@flow(name="approval-reminders")
def approval_reminders(now: datetime | None = None, limit_hours: int | None = None) -> int:
    """Record reminders for overdue steps; returns how many were created."""
    settings = load_settings()
    engine = open_database(settings.database_url)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    limit = timedelta(hours=limit_hours or settings.reminder_after_hours)
    with new_session(engine) as session:
        created = record_reminders(session, now=moment, limit=limit)
        session.commit()
        messages = [(r.request_key, r.step, r.message) for r in created]
    for request, step, message in messages:
        create_markdown_artifact(
            key=f"reminder-{request.replace(':', '-')}-{step}".lower().replace("_", "-"),
            markdown=f"## 催办 Reminder\n\n{message}\n\nNothing is approved automatically.",
            description=message,
        )
    return len(messages)
