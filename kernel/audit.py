"""The append-only, keyed, hash-chained audit log of every decision, refusal and change.

Each row stores ``hash = HMAC-SHA256(key, prev_hash + content)`` where ``content`` is canonical
JSON of the event and the key (``BROKERFLOW_AUDIT_KEY``) lives outside the database, so whoever
can only write the database cannot forge a consistent chain.  ``AuditHead`` holds the tip, so
a deleted tail is noticed too; rows written before the chain was keyed (up to
``AuditHead.legacy_last_id``) keep their plain SHA-256.  The head is also anchored outside the
database (``audit_checkpoint``: written to the locked bucket and into archived documents'
metadata by the archive layer); ``verify_audit`` checks the chain, ``verify_against_anchors``
checks it against those anchors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from functools import lru_cache
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


def chain_hash(prev_hash: str, content: str, *, key: bytes | None = None) -> str:
    """The row's link: HMAC-SHA256 under ``key`` (plain SHA-256 only for legacy rows)."""
    message = (prev_hash + content).encode("utf-8")
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def audit_key() -> bytes:
    """``BROKERFLOW_AUDIT_KEY`` (from the environment or the env file ``up`` writes)."""
    return _audit_key_for(os.environ.get("BROKERFLOW_AUDIT_KEY"),
                          os.environ.get("BROKERFLOW_HOME"))


@lru_cache(maxsize=8)
def _audit_key_for(_value: str | None, _home: str | None) -> bytes:
    from brokerflow.kernel.settings import load_settings

    return load_settings(check_secrets=False).audit_key.encode("utf-8")


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
                       content=content, prev_hash=prev,
                       hash=chain_hash(prev, content, key=audit_key()))
    session.add(event)
    session.flush()
    assert event.id is not None
    head.last_id, head.last_hash, head.count = event.id, event.hash, head.count + 1
    session.add(head)
    return event


def audit_rows(session: Session) -> int:
    """How many rows the audit log holds."""
    return int(session.exec(select(func.count()).select_from(AuditEvent)).one())


def verify_audit(session: Session, *, key: bytes | None = None) -> list[str]:
    """Every break in the chain, in order; empty when intact (``key``: the audit key)."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    last: AuditEvent | None = None
    key = key if key is not None else audit_key()
    head_row = session.get(AuditHead, 1)
    legacy_last_id = head_row.legacy_last_id if head_row is not None else 0
    for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))):
        count += 1
        if event.prev_hash != prev:
            problems.append(f"row {event.id}: previous hash does not match row before it "
                            "(a row was deleted, inserted or reordered)")
        row_key = None if event.id is not None and event.id <= legacy_last_id else key
        if not hmac.compare_digest(chain_hash(event.prev_hash, event.content, key=row_key),
                                   event.hash):
            problems.append(f"row {event.id}: content does not match its keyed hash (edited, "
                            "or rewritten without the audit key)")
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


def audit_checkpoint(session: Session) -> dict[str, Any]:
    """The chain's head as an anchor to keep outside the database."""
    head = session.get(AuditHead, 1)
    if head is None:
        return {"count": 0, "last_id": 0, "last_hash": GENESIS, "legacy_last_id": 0}
    return {"count": head.count, "last_id": head.last_id, "last_hash": head.last_hash,
            "legacy_last_id": head.legacy_last_id}


def verify_against_anchors(session: Session, anchors: list[dict[str, Any]]) -> list[str]:
    """Problems between the database's chain and anchors kept outside it: each anchored row
    must still be there with the same hash, the same number of rows up to it, and the same
    legacy boundary (so a rewrite of the database alone is found)."""
    problems: list[str] = []
    head = session.get(AuditHead, 1)
    legacy = head.legacy_last_id if head is not None else 0
    for anchor in anchors:
        where = anchor.get("source", "an anchor")
        if anchor.get("unreadable"):
            problems.append(f"{where}: the anchor cannot be read")
            continue
        last_id, last_hash = int(anchor.get("last_id", 0)), str(anchor.get("last_hash", ""))
        if int(anchor.get("legacy_last_id", 0)) != legacy:
            problems.append(f"{where}: the legacy boundary was row {anchor.get('legacy_last_id')}"
                            f", the database now says {legacy}")
        if last_id == 0:
            continue
        row = session.get(AuditEvent, last_id)
        if row is None or not hmac.compare_digest(row.hash, last_hash):
            problems.append(f"{where}: row {last_id} had hash {last_hash[:12]}, the database "
                            f"{'lacks it' if row is None else 'has ' + row.hash[:12]}")
            continue
        rows = int(session.exec(select(func.count()).select_from(AuditEvent)
                                .where(col(AuditEvent.id) <= last_id)).one())
        if rows != int(anchor.get("count", rows)):
            problems.append(f"{where}: {anchor.get('count')} rows up to row {last_id}, the "
                            f"database holds {rows}")
    return problems
