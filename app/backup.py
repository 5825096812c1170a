"""``brokerflow backup DIR``: one consistent, portable copy of a brokerflow installation.

A backup is a directory (0700, files 0600)::

    manifest.json            format, when, the schema revision, every file's SHA-256
    manifest.sig             SHA-256 and HMAC-SHA256 of manifest.json (see below)
    database/NN-<table>.jsonl   every row of every table, one JSON object a line, tables in
                             dependency order (the archive index is the tables archiveentry,
                             serialrecord and serialcounter)
    objects.jsonl            every object version of both stores (records, inputs), oldest
                             first per key: store, key, version id, SHA-256, MD5, size,
                             metadata, retention, its blob
    blobs/<aa>/<sha256>      the objects' bytes, named by their SHA-256 (same bytes once)

The database is read in one snapshot (a read transaction: WAL on SQLite, REPEATABLE READ on
PostgreSQL) while the stack keeps running; documents and void markers whose serial the
snapshot does not know yet, and audit checkpoints beyond its audit head, are left out, so
the copy is consistent.  Values are JSON (datetimes ISO 8601 with their zone), so a backup of
SQLite restores into PostgreSQL and back.

``manifest.sig`` holds the manifest's SHA-256 (damage) and an HMAC under a key derived from
``BROKERFLOW_AUDIT_KEY`` (tampering: whoever edits a backup, e.g. adds an admin to the user
table, cannot sign it again).  The key itself is **not** in the backup: the operator keeps the
keys (``brokerflow.env``) apart and restores with the same ``BROKERFLOW_AUDIT_KEY``,
``BROKERFLOW_ID_HASH_KEY`` and ``BROKERFLOW_TOTP_KEY``.  Client ID numbers are in the
database as keyed hashes and last four characters only, so the backup holds no clear number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Column, Connection, Engine, Table, inspect, select, types
from sqlmodel import SQLModel

from brokerflow.archive.layout import is_document_key, void_marker_serial
from brokerflow.archive.service import Archive
from brokerflow.archive.store import ObjectInfo
from brokerflow.kernel.audit import append_audit, audit_key
from brokerflow.kernel.db import READ_ONLY, new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView

FORMAT = "brokerflow-backup/1"
MANIFEST, SIGNATURE, OBJECTS = "manifest.json", "manifest.sig", "objects.jsonl"
CHECKPOINT_PREFIX = "audit/checkpoints/"
FETCHERS, FETCH_CHUNK = 4, 64  # objects read side by side; how many are held at once
CONTENT_TYPES = {".pdf": "application/pdf", ".json": "application/json",
                 ".void": "application/json", ".csv": "text/csv",
                 ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@dataclass
class BackupReport:
    directory: Path
    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    objects: int = 0
    object_bytes: int = 0
    left_out: int = 0  # objects newer than the database snapshot
    mismatched: list[str] = field(default_factory=list)  # index rows whose bytes differ
    seconds: float = 0.0


# --------------------------------------------------------------------------- schema & values


def _migrations() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", "brokerflow.kernel:migrations")
    return ScriptDirectory.from_config(config)


def schema_head() -> str:
    """The schema revision this release's migrations end at."""
    head = _migrations().get_current_head()
    assert head is not None
    return head


def known_revision(revision: str) -> bool:
    """Whether this release's migrations know ``revision``."""
    try:
        return _migrations().get_revision(revision) is not None
    except CommandError:
        return False


def schema_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def brokerflow_tables() -> list[Table]:
    """Every table of brokerflow's schema, parents before children."""
    return list(SQLModel.metadata.sorted_tables)


def _base_type(column: Column[Any]) -> Any:
    kind = column.type
    return kind.impl_instance if isinstance(kind, types.TypeDecorator) else kind


def encode_value(value: Any) -> Any:
    """A column value as JSON (datetimes and dates ISO 8601, decimals as strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def decoder(column: Column[Any]) -> Callable[[Any], Any]:
    """The inverse of ``encode_value`` for one column (ValueError on a bad value)."""
    kind = _base_type(column)

    def typed(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
        return lambda v: None if v is None else parse(v)

    if isinstance(kind, types.DateTime):
        return typed(datetime.fromisoformat)
    if isinstance(kind, types.Date):
        return typed(date.fromisoformat)
    if isinstance(kind, types.Numeric) and not isinstance(kind, types.Float):
        return typed(Decimal)
    if isinstance(kind, types.LargeBinary):
        return typed(bytes.fromhex)
    return lambda v: v


def content_type_of(key: str) -> str:
    """What a key's bytes are, by its suffix (the store does not report it)."""
    return CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream")


def manifest_hmac(body: bytes) -> str:
    """HMAC-SHA256 of the manifest under a key derived from the audit key."""
    key = hmac.new(audit_key(), FORMAT.encode(), hashlib.sha256).digest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- private files


def _private_file(path: Path) -> IO[bytes]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


class _HashingWriter:
    """Lines to a new private file, hashed and flushed to disk on close."""

    def __init__(self, path: Path) -> None:
        self.out = _private_file(path)
        self.digest = hashlib.sha256()
        self.lines = 0

    def line(self, data: dict[str, Any]) -> None:
        raw = json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
        self.digest.update(raw)
        self.out.write(raw)
        self.lines += 1

    def close(self) -> str:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        return self.digest.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with _private_file(path) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_tree(root: Path) -> None:
    for directory, _dirs, _files in os.walk(root):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_target_directory(directory: Path) -> None:
    """A backup goes to a new (or empty) directory whose parent exists (exit 2 else)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BadInput("exists and is not an empty directory: a backup never overwrites",
                       file=str(directory))
    if not directory.absolute().parent.is_dir():
        raise BadInput("its parent directory does not exist", file=str(directory))


# --------------------------------------------------------------------------- making one


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one committed state, without blocking writers."""
    with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ",
                                                      postgresql_readonly=True)
        with connection.begin():
            yield connection


def make_backup(archive: Archive, directory: Path, *, actor: UserView,
                progress: Callable[[int], None] | None = None) -> BackupReport:
    """Write a backup of ``archive``'s database and store to ``directory`` (new or empty).

    Written into a private sibling directory first and renamed into place at the end: a
    failure leaves no partial backup behind.  The backup is audited (and contains its own
    audit row)."""
    started = time.monotonic()
    check_target_directory(directory)
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=actor.user_id, action="backup",
                     details={"directory": str(directory)})
        session.commit()
    parent = directory.absolute().parent
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=parent))
    report = BackupReport(directory=directory)
    try:
        manifest = _write_contents(archive, work, report, progress)
        body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
        _write_file(work / MANIFEST, body)
        signature = {"file": MANIFEST, "sha256": hashlib.sha256(body).hexdigest(),
                     "hmac_sha256": manifest_hmac(body),
                     "key": "derived from BROKERFLOW_AUDIT_KEY (not in the backup)"}
        _write_file(work / SIGNATURE, json.dumps(signature, indent=1).encode())
        _sync_tree(work)
        os.replace(work, directory)  # an empty directory is replaced too
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report.seconds = time.monotonic() - started
    return report


def _write_contents(archive: Archive, work: Path, report: BackupReport,
                    progress: Callable[[int], None] | None) -> dict[str, Any]:
    tables: list[dict[str, Any]] = []
    with snapshot(archive.engine) as connection:
        revision = schema_revision(connection)
        dialect = connection.dialect.name
        present = set(inspect(connection).get_table_names())
        for number, table in enumerate(brokerflow_tables(), start=1):
            name = f"database/{number:02d}-{table.name}.jsonl"
            writer = _HashingWriter(work / name)
            order = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execute(select(table).order_by(*order)
                                      .execution_options(yield_per=1000)).mappings()
            for row in rows:
                writer.line({k: encode_value(v) for k, v in row.items()})
            tables.append({"name": table.name, "file": name, "rows": writer.lines,
                           "sha256": writer.close()})
            report.tables[table.name] = writer.lines
        serials = set(connection.execute(select(_table("serialrecord").c.serial)).scalars())
        head = connection.execute(select(_table("audithead").c.count)).scalar() or 0
        indexed = {(r.object_key, r.version_id): (r.serial, r.sha256) for r in
                   connection.execute(select(_table("archiveentry")))}
    objects = _copy_objects(archive, work, report, progress, serials=serials,
                            audit_count=int(head), indexed=indexed)
    known = {t.name for t in brokerflow_tables()} | {"alembic_version"}
    return {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(),
            "schema_revision": revision, "source_database": dialect,
            "source_store": getattr(archive.store, "kind", "s3"),
            "tables": tables, "objects": objects,
            "other_tables_not_backed_up": sorted(present - known),
            "not_included": "the keys of brokerflow.env (BROKERFLOW_AUDIT_KEY, "
                            "BROKERFLOW_ID_HASH_KEY, BROKERFLOW_TOTP_KEY, BROKERFLOW_SECRET_KEY)"
                            "; Prefect's own database (run history)"}


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def _belongs(key: str, *, serials: set[str], audit_count: int) -> bool:
    """Whether an object was there at the database snapshot (see the module text)."""
    if is_document_key(key):
        return key.rsplit("/", 1)[-1].removesuffix(".pdf") in serials
    voided = void_marker_serial(key)
    if voided is not None:
        return voided in serials
    if key.startswith(CHECKPOINT_PREFIX):
        count = key.removesuffix(".json").rsplit("-", 1)[-1]
        return not count.isdigit() or int(count) <= audit_count
    return True


def _copy_objects(archive: Archive, work: Path, report: BackupReport,
                  progress: Callable[[int], None] | None, *, serials: set[str],
                  audit_count: int, indexed: dict[tuple[str, str], tuple[str, str]]
                  ) -> dict[str, Any]:
    stores = {"records": archive.store, "inputs": archive.inputs}
    wanted: list[tuple[str, str, str]] = []  # (store, key, version id)
    for name, store in stores.items():
        by_key: dict[str, list[str]] = {}
        for version in store.versions():  # newest first per key
            by_key.setdefault(version.key, []).insert(0, version.version_id)
        for key in sorted(by_key):
            if name == "inputs" or _belongs(key, serials=serials, audit_count=audit_count):
                wanted += [(name, key, version_id) for version_id in by_key[key]]
            else:
                report.left_out += len(by_key[key])

    def fetch(item: tuple[str, str, str]) -> tuple[str, str, str, ObjectInfo, bytes]:
        name, key, version_id = item
        store = stores[name]
        return (name, key, version_id, store.stat(key, version_id=version_id),
                store.get(key, version_id=version_id))

    writer = _HashingWriter(work / OBJECTS)
    with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
        for start in range(0, len(wanted), FETCH_CHUNK):  # in order, a chunk in memory
            for name, key, version_id, info, data in pool.map(
                    fetch, wanted[start:start + FETCH_CHUNK]):
                sha256 = hashlib.sha256(data).hexdigest()
                blob = work / "blobs" / sha256[:2] / sha256
                if not blob.exists():
                    _write_file(blob, data)
                indexed_as = indexed.get((key, version_id))
                if indexed_as is not None and indexed_as[1] != sha256:
                    report.mismatched.append(indexed_as[0])
                writer.line({"store": name, "key": key, "version_id": version_id,
                             "sha256": sha256,
                             "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                             "size": len(data), "metadata": info.metadata,
                             "content_type": content_type_of(key),
                             "retention_mode": info.retention_mode,
                             "retain_until": info.retain_until})
                report.objects += 1
                report.object_bytes += len(data)
                if progress is not None:
                    progress(report.objects)
    return {"file": OBJECTS, "count": writer.lines, "bytes": report.object_bytes,
            "sha256": writer.close()}
