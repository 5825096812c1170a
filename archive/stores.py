"""Which document store an installation uses, and the interface both stores offer.

A configured S3 endpoint (``BROKERFLOW_S3_ENDPOINT``: MinIO or any S3 with Object Lock) is
used as is; without one, the durable directory store under ``BROKERFLOW_STORE_DIR`` (default
``$BROKERFLOW_HOME/store``) keeps the documents (SPEC §7).  The archive sees only
``DocumentStore``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from brokerflow.archive.store import (
    ObjectInfo,
    ObjectStore,
    ObjectVersion,
    Retention,
    StoredObject,
)
from brokerflow.kernel.settings import Settings


class DocumentStore(Protocol):
    """What the archive needs of a store: conditional, checksummed, versioned objects."""

    kind: str
    bucket: str

    def location(self, prefix: str = "") -> str: ...

    def ensure_bucket(self, *, retention_years: int, retention_mode: str,
                      strict: bool = True) -> str | None: ...

    def lock_mode(self) -> str | None: ...

    def versioning_enabled(self) -> bool: ...

    def put(self, key: str, data: bytes, *, metadata: dict[str, str],
            content_type: str = "application/pdf", new_version: bool = False,
            retention: Retention | None = None) -> StoredObject: ...

    def landed(self, key: str, md5_hex: str) -> StoredObject | None: ...

    def get(self, key: str, *, version_id: str | None = None) -> bytes: ...

    def stat(self, key: str, *, version_id: str | None = None) -> ObjectInfo: ...

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]: ...

    def set_legal_hold(self, key: str, *, version_id: str, on: bool) -> None: ...


def open_store(settings: Settings, *, inputs: bool = False) -> DocumentStore:
    """The S3 store when an endpoint is configured, else the directory store; ``inputs``: the
    store of CRM exports and other inputs (its own bucket, kept apart from the records)."""
    bucket = settings.s3_inputs_bucket if inputs else settings.s3_bucket
    if settings.s3_endpoint:
        return ObjectStore.from_settings(settings, bucket=bucket)
    from brokerflow.archive.directory_store import DirectoryStore

    return DirectoryStore(root=settings.store_path, bucket=bucket)


def describe_store(store: DocumentStore) -> str:
    """One line for ``up`` and ``doctor``: which store, and what it guarantees."""
    if store.kind == "directory":
        from brokerflow.archive.directory_store import GUARANTEE

        return f"{store.location()} ({GUARANTEE})"
    return (f"{store.location()} (S3 endpoint; versioning and Object Lock on the bucket: "
            "COMPLIANCE mode makes it a WORM store)")
