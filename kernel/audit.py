"""The append-only, hash-chained audit log of every approval decision and refused attempt.

Each row stores ``hash = sha256(prev_hash + content)`` where ``content`` is canonical JSON of
the event; ``AuditHead`` holds the tip, so a deleted tail is noticed too.  Editing, deleting or
reordering any row breaks ``verify_audit``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlmodel import Session, col, func, select

from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.models import AuditEvent, AuditHead

GENESIS = "0" * 64


def canonical_content(
    *, at: datetime, actor_id: str, action: str, request_key: str, details: dict[str, Any]
) -> str:
    """The exact text that is hashed: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(
        {"at": at.astimezone(UTC).isoformat(), "actor": actor_id, "action": action,
         "request": request_key, "details": details},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def _locked_head(session: Session) -> AuditHead:
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditHead(id=1, last_hash=GENESIS))
    except sa_exc.IntegrityError:  # created concurrently
        pass
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    return head


def append_audit(
    session: Session,
    *,
    actor_id: str,
    action: str,
    request_key: str = "",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (the caller commits)."""
    at = (at or utcnow()).astimezone(UTC)
    head = _locked_head(session)
    content = canonical_content(at=at, actor_id=actor_id, action=action,
                                request_key=request_key, details=details or {})
    prev = head.last_hash or GENESIS
    event = AuditEvent(at=at, actor_id=actor_id[:64], action=action, request_key=request_key,
                       content=content, prev_hash=prev, hash=chain_hash(prev, content))
    session.add(event)
    session.flush()
    assert event.id is not None
    head.last_id, head.last_hash, head.count = event.id, event.hash, head.count + 1
    session.add(head)
    return event


def audit_rows(session: Session) -> int:
    """How many rows the audit log holds."""
    return int(session.exec(select(func.count()).select_from(AuditEvent)).one())


def verify_audit(session: Session) -> list[str]:
    """Every break in the chain, in order; empty when intact."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    last: AuditEvent | None = None
    for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))):
        count += 1
        if event.prev_hash != prev:
            problems.append(f"row {event.id}: previous hash does not match row before it "
                            "(a row was deleted, inserted or reordered)")
        if chain_hash(event.prev_hash, event.content) != event.hash:
            problems.append(f"row {event.id}: content does not match its hash (edited)")
        try:
            data = json.loads(event.content)
            at = event.at
            fields_match = (data["actor"] == event.actor_id and data["action"] == event.action
                            and data["request"] == event.request_key
                            and datetime.fromisoformat(data["at"]) == at)
        except (ValueError, KeyError):
            fields_match = False
        if not fields_match:
            problems.append(f"row {event.id}: columns differ from the hashed content (edited)")
        prev = event.hash
        last = event
    head = session.get(AuditHead, 1)
    if head is not None:
        if head.count != count or (last is not None and head.last_hash != last.hash):
            problems.append(f"the log holds {count} rows ending {prev[:12]}, but its head "
                            f"recorded {head.count} rows ending {head.last_hash[:12]} "
                            "(rows were removed from the end)")
    elif count:
        problems.append("the audit head is missing")
    return problems
