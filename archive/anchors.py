"""The audit chain's head kept where the database cannot reach it (SPEC §2.1 tamper evidence).

Checkpoints are small JSON objects under ``audit/checkpoints/`` in the archive bucket, which
has versioning and Object Lock: once written they cannot be changed within the retention.
One is written a day (by the hourly reminders run) and on every successful ``audit verify``;
every archived document also carries the head it was archived at (``audit-head`` metadata).
``verify_against_anchors`` then finds a rewrite of the database alone, even one made with
the chain's own hashing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from brokerflow.kernel.audit import audit_checkpoint
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import read_session
from brokerflow.kernel.errors import BrokerflowError

if TYPE_CHECKING:
    from brokerflow.archive.service import Archive

CHECKPOINT_PREFIX = "audit/checkpoints/"


def head_label(anchor: dict[str, Any]) -> str:
    """The head as one metadata value: ``<count>:<last id>:<last hash>:<legacy last id>``."""
    return (f"{anchor['count']}:{anchor['last_id']}:{anchor['last_hash']}:"
            f"{anchor['legacy_last_id']}")


def parse_head_label(text: str, *, source: str) -> dict[str, Any] | None:
    """An anchor from a ``head_label``; None when it is not one."""
    parts = text.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in (parts[0], parts[1], parts[3])):
        return None
    return {"count": int(parts[0]), "last_id": int(parts[1]), "last_hash": parts[2],
            "legacy_last_id": int(parts[3]), "source": source}


def current_head(archive: Archive) -> dict[str, Any]:
    with read_session(archive.engine) as session:
        return audit_checkpoint(session)


def write_checkpoint(archive: Archive, *, at: datetime | None = None) -> str:
    """Store the chain's current head in the bucket; the checkpoint's key."""
    moment = at or utcnow()
    anchor = current_head(archive) | {"at": moment.isoformat()}
    key = f"{CHECKPOINT_PREFIX}{moment:%Y%m%dT%H%M%S%fZ}-{anchor['count']}.json"
    archive.store.put(key, json.dumps(anchor, sort_keys=True).encode(),
                      metadata={"audit-head": head_label(anchor)},
                      content_type="application/json")
    return key


def checkpoint_since(archive: Archive, since: datetime) -> bool:
    """Whether a checkpoint was written at or after ``since`` (UTC)."""
    stamp = f"{CHECKPOINT_PREFIX}{since:%Y%m%dT%H%M%S%fZ}"
    return any(v.key >= stamp for v in archive.store.versions(CHECKPOINT_PREFIX))


def read_anchors(archive: Archive) -> list[dict[str, Any]]:
    """Every checkpoint in the bucket, oldest first, each with its ``source`` (the key)."""
    anchors = []
    for version in sorted(archive.store.versions(CHECKPOINT_PREFIX), key=lambda v: v.key):
        try:
            data = json.loads(archive.store.get(version.key, version_id=version.version_id))
        except (BrokerflowError, ValueError):
            anchors.append({"source": version.key, "unreadable": True})
            continue
        if isinstance(data, dict):
            anchors.append(data | {"source": version.key})
    return anchors
