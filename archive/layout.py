"""Where things live in the archive bucket and what their metadata says (SPEC §5).

``<branch>/<type>/<yyyy>/<serial>.pdf`` is a document; ``<serial>.void`` beside it records
that the number is void; the metadata of a document is enough to rebuild its index row.
"""

from __future__ import annotations

from datetime import datetime

from brokerflow.archive.serials import parse_serial
from brokerflow.archive.store import ObjectInfo
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import ArchiveEntry


def is_document_key(key: str) -> bool:
    """Whether ``key`` has the archive's layout ``<branch>/<type>/<yyyy>/<serial>.pdf``."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(".pdf"):
        return False
    try:
        return parse_serial(name[:-4]).object_key == key
    except BadInput:
        return False


VOID_SUFFIX = ".void"


def void_marker_key(serial: str) -> str:
    """Where the bucket records that ``serial`` is void: beside its PDF's key."""
    return parse_serial(serial).object_key.removesuffix(".pdf") + VOID_SUFFIX


def void_marker_serial(key: str) -> str | None:
    """The serial a void marker key records; None for any other key."""
    if not key.endswith(VOID_SUFFIX):
        return None
    serial = key.rsplit("/", 1)[-1].removesuffix(VOID_SUFFIX)
    try:
        return serial if void_marker_key(serial) == key else None
    except BadInput:
        return None


def entry_from_metadata(key: str, info: ObjectInfo) -> ArchiveEntry:
    """The index row an object's metadata describes (KeyError/ValueError when incomplete)."""
    meta = info.metadata
    serial = parse_serial(meta["serial"])
    if serial.object_key != key:
        raise ValueError(f"serial {serial} does not belong at {key}")
    return ArchiveEntry(
        serial=str(serial), branch=meta["branch"], doc_type=meta["type"], year=serial.year,
        number=serial.number, subject=meta["subject"], subject_key=meta["subject-key"],
        revision=int(meta["revision"]), cm_id=meta.get("cm") or None,
        team=meta.get("team", ""), month=meta["month"], sha256=meta["sha256"],
        size=info.size, created_by=meta.get("created-by", ""),
        created_at=datetime.fromisoformat(meta["created-at"]), object_key=key,
        version_id=info.version_id,
    )
