"""催办: approval steps waiting longer than the policy allows.  ``overdue_steps`` is the pure
rule; ``record_reminders`` writes a reminder (and its audit row) for each (caller commits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.models import Reminder, WaitingStep


@dataclass(frozen=True)
class Overdue:
    request_key: str
    revision: int
    step: str
    since: datetime
    waited: timedelta


def overdue_steps(
    waiting: Sequence[WaitingStep], reminders: Sequence[Reminder], *, now: datetime,
    limit: timedelta,
) -> list[Overdue]:
    """Steps waiting longer than ``limit`` with no reminder in the last ``limit`` (pure)."""
    last_reminded: dict[tuple[str, int, str], datetime] = {}
    for r in reminders:
        key = (r.request_key, r.revision, r.step)
        at = r.reminded_at
        last_reminded[key] = max(at, last_reminded.get(key, at))
    found = []
    for w in waiting:
        since = w.since
        if now - since < limit:
            continue
        previous = last_reminded.get((w.request_key, w.revision, w.step))
        if previous is not None and now - previous < limit:
            continue
        found.append(Overdue(w.request_key, w.revision, w.step, since, now - since))
    return found


def record_reminders(session: Session, *, now: datetime, limit: timedelta) -> list[Reminder]:
    """Create a reminder row for every overdue step (caller commits)."""
    waiting = list(session.exec(select(WaitingStep)))
    reminders = list(session.exec(select(Reminder)))
    created = []
    for o in overdue_steps(waiting, reminders, now=now, limit=limit):
        days = o.waited.total_seconds() / 86400
        message = (f"催办: {o.request_key} revision {o.revision} has waited {days:.1f} days "
                   f"on step {o.step} (since {o.since.isoformat(timespec='minutes')})")
        row = Reminder(request_key=o.request_key, revision=o.revision, step=o.step,
                       waiting_since=o.since, reminded_at=now, message=message)
        session.add(row)
        append_audit(session, actor_id="system", action="reminder", request_key=o.request_key,
                     at=now, details={"revision": o.revision, "step": o.step,
                                      "waiting_since": o.since.isoformat()})
        created.append(row)
    return created
