"""催办: a scheduled flow that records a reminder (and a Prefect artifact) for every approval
step waiting longer than the policy allows.  Nothing is ever approved automatically.  Once a
day it also anchors the audit chain's head in the bucket (``archive.anchors``).  It wakes the
quarterly evaluations whose deadline passed (a suspended run has no process to notice)."""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from sqlalchemy import Engine

from brokerflow.approvals.reminders import record_reminders
from brokerflow.approvals.waiting import wake_run
from brokerflow.archive.anchors import checkpoint_since, write_checkpoint
from brokerflow.archive.service import open_archive
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.errors import StorageError
from brokerflow.kernel.settings import Settings, load_settings
from brokerflow.payroll.evaluation_records import overdue_evaluation_runs

#: The blank form that wakes an evaluation at its deadline (it counts as nothing).
WAKE_INPUT = {"evaluator": ""}


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
    anchor_daily(settings)
    wake_overdue_evaluations(engine, now=moment)
    return len(messages)


def wake_overdue_evaluations(engine: Engine, *, now: datetime) -> list[str]:
    """Wake every evaluation run still collecting after its deadline; the runs woken."""
    with new_session(engine) as session:
        runs = overdue_evaluation_runs(session, now=now)
    woken = []
    for run_id in runs:
        try:
            if wake_run(run_id, WAKE_INPUT):
                woken.append(run_id)
        except Exception as exc:  # noqa: BLE001 - one run's trouble never stops the others
            get_run_logger().warning("evaluation run %s not woken: %s", run_id, exc)
    return woken


def anchor_daily(settings: Settings) -> str | None:
    """Write today's audit checkpoint unless there is one; its key (None: none was due, or
    the store is down, which the next hourly run retries)."""
    archive = open_archive(settings, prepare_bucket=False)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        if checkpoint_since(archive, today):
            return None
        return write_checkpoint(archive)
    except StorageError as exc:
        get_run_logger().warning("audit checkpoint not written (retried next hour): %s", exc)
        return None
