"""``brokerflow restore DIR``: a backup (``brokerflow.app.backup``) onto an empty stack.

The target is the configured database (migrated to this release's schema, which must be the
backup's) and document store (S3 or the directory store: either kind restores into either).
Both must be empty.  Order, so that nothing is half-written:

1. every file of the backup is checked against the signed manifest (exit 2 naming the file);
2. the objects are stored, oldest version of each key first; the store gives them new version
   ids, which are recorded.  Stores are write-once, so an interrupted restore cannot take them
   back: a store holding only a prefix of this backup's own objects counts as empty, and
   running the restore again continues where it stopped;
3. every table is written in **one** database transaction, the archive index pointing at the
   new version ids, PostgreSQL sequences moved past the restored ids, open archive-page
   sessions ended, and an audit row appended; any failure rolls all of it back.

Object retention starts again at the restore (never shorter than the original's).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select, text, types, update
from sqlalchemy import exc as sa_exc
from sqlmodel import col

from brokerflow.app.backup import (
    FORMAT,
    MANIFEST,
    OBJECTS,
    SIGNATURE,
    brokerflow_tables,
    decoder,
    manifest_hmac,
    schema_head,
)
from brokerflow.archive.service import Archive
from brokerflow.archive.store import Retention, parse_retain_until
from brokerflow.archive.stores import DocumentStore
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import is_busy, new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import ArchiveEntry, WebSession

BATCH = 500


@dataclass(frozen=True)
class Backup:
    """A backup directory whose every file was checked against its signed manifest."""

    directory: Path
    manifest: dict[str, Any]

    def table_file(self, name: str) -> Path:
        entry = next(t for t in self.manifest["tables"] if t["name"] == name)
        return self.directory / entry["file"]

    def objects(self) -> Iterator[dict[str, Any]]:
        """The object versions, oldest first per key, as listed."""
        with (self.directory / OBJECTS).open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)

    def blob(self, sha256: str) -> Path:
        return self.directory / "blobs" / sha256[:2] / sha256


@dataclass
class RestoreReport:
    tables: dict[str, int] = field(default_factory=dict)
    objects: int = 0
    already_stored: int = 0  # stored by an earlier, interrupted restore of this backup
    seconds: float = 0.0


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expect(path: Path, sha256: str, what: str) -> None:
    if not path.is_file():
        raise BadInput(f"{what} is missing: the backup is incomplete", file=str(path))
    if _sha256_of(path) != sha256:
        raise BadInput(f"{what} does not match its SHA-256 in {MANIFEST}: the backup is "
                       "damaged or was altered", file=str(path))


def open_backup(directory: Path, *, progress: Callable[[int], None] | None = None) -> Backup:
    """The backup in ``directory``, every file checked (exit 2 naming the first bad one):
    the manifest against its signature, each file against the manifest, each blob against
    its name."""
    if not directory.is_dir():
        raise BadInput("no such backup directory", file=str(directory))
    manifest_path, signature_path = directory / MANIFEST, directory / SIGNATURE
    for path in (manifest_path, signature_path):
        if not path.is_file():
            raise BadInput("missing: not a brokerflow backup, or an incomplete one",
                           file=str(path))
    body = manifest_path.read_bytes()
    try:
        signature = json.loads(signature_path.read_bytes())
        expected_sha, expected_mac = str(signature["sha256"]), str(signature["hmac_sha256"])
    except (ValueError, KeyError, TypeError):
        raise BadInput("unreadable signature", file=str(signature_path)) from None
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), expected_sha):
        raise BadInput(f"does not match the SHA-256 in {SIGNATURE}: the manifest is damaged",
                       file=str(manifest_path))
    if not hmac.compare_digest(manifest_hmac(body), expected_mac):
        raise BadInput(f"its HMAC in {SIGNATURE} does not verify: the backup was altered, or "
                       "BROKERFLOW_AUDIT_KEY is not the key of the installation that made it "
                       "(restore with that installation's keys)", file=str(manifest_path))
    try:
        manifest = json.loads(body)
        if manifest.get("format") != FORMAT:
            raise BadInput(f"format {manifest.get('format')!r} is not {FORMAT}",
                           file=str(manifest_path), column="format")
        for table in manifest["tables"]:
            _expect(directory / table["file"], table["sha256"], f"table {table['name']}")
        objects = manifest["objects"]
        _expect(directory / objects["file"], objects["sha256"], "the objects list")
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"unreadable manifest ({exc})", file=str(manifest_path)) from None
    backup = Backup(directory=directory, manifest=manifest)
    checked: set[str] = set()
    for number, item in enumerate(backup.objects(), start=1):
        blob = backup.blob(item["sha256"])
        if item["sha256"] not in checked:
            _expect(blob, item["sha256"], f"the bytes of {item['key']}")
            checked.add(item["sha256"])
        if progress is not None:
            progress(number)
    return backup


def restore_backup(archive: Archive, backup: Backup, *,
                   progress: Callable[[int], None] | None = None) -> RestoreReport:
    """Restore ``backup`` (already checked by ``open_backup``) into ``archive``."""
    started = time.monotonic()
    head = schema_head()
    revision = backup.manifest.get("schema_revision")
    if revision != head:
        raise BadInput(f"the backup is at schema revision {revision}, this release at {head}: "
                       "restore it with the release that made it, then upgrade",
                       file=str(backup.directory / "manifest.json"), column="schema_revision")
    listed = {t["name"] for t in backup.manifest["tables"]}
    missing = sorted({t.name for t in brokerflow_tables()} - listed)
    if missing:
        raise BadInput(f"lists no table {', '.join(missing)}",
                       file=str(backup.directory / "manifest.json"), column="tables")
    refuse_non_empty_database(archive)
    report = RestoreReport()
    versions = _store_objects(archive, backup, report, progress)
    _write_database(archive, backup, versions, report)
    report.seconds = time.monotonic() - started
    return report


def refuse_non_empty_database(archive: Archive, connection: Connection | None = None) -> None:
    """Exit 2 unless every brokerflow table of the target is empty."""

    def check(conn: Connection) -> None:
        for table in brokerflow_tables():
            rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
            if rows:
                raise BadInput(f"the target database is not empty (table {table.name} holds "
                               f"{rows} row(s)): restore only onto an empty stack, a new "
                               "database and an empty store", column="BROKERFLOW_DATABASE_URL")

    if connection is not None:
        check(connection)
        return
    with archive.engine.connect() as conn:
        check(conn)


def _store_objects(archive: Archive, backup: Backup, report: RestoreReport,
                   progress: Callable[[int], None] | None) -> dict[tuple[str, str], str]:
    """Store every object version; (key, old version id) -> new version id."""
    versions: dict[tuple[str, str], str] = {}
    for name, store in (("records", archive.store), ("inputs", archive.inputs)):
        versions |= _store_into(archive, store, [item for item in backup.objects()
                                                 if item.get("store", "records") == name],
                                backup, report, progress)
    return versions


def _store_into(archive: Archive, store: DocumentStore, items: list[dict[str, Any]],
                backup: Backup, report: RestoreReport,
                progress: Callable[[int], None] | None) -> dict[tuple[str, str], str]:
    """Store ``items`` (one store's versions) with the retention each had."""
    wanted: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        wanted.setdefault(item["key"], []).append(item)
    present: dict[str, list[tuple[str, str]]] = {}  # key -> [(version id, md5)] oldest first
    for version in store.versions():
        present.setdefault(version.key, []).insert(0, (version.version_id, version.etag))
    for key, there in sorted(present.items()):
        listed = [item["md5"] for item in wanted.get(key, [])]
        if [etag for _, etag in there] != listed[:len(there)]:
            raise BadInput(f"the target store is not empty ({key} is not this backup's): "
                           "restore only onto an empty stack, a new database and an empty "
                           f"store ({store.location()})", column="BROKERFLOW_S3_BUCKET")
    versions: dict[tuple[str, str], str] = {}
    mode = archive.settings.retention_mode if store.lock_mode() is not None else None
    for key in sorted(wanted):
        there = present.get(key, [])
        for position, item in enumerate(wanted[key]):
            if position < len(there):
                versions[(key, item["version_id"])] = there[position][0]
                report.already_stored += 1
                continue
            data = backup.blob(item["sha256"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != item["sha256"]:  # changed since checked
                raise BadInput("changed during the restore", file=str(backup.blob(
                    item["sha256"])))
            stored = store.put(key, data, metadata=dict(item["metadata"]),
                               content_type=item["content_type"], new_version=position > 0,
                               retention=_retention_of(item, mode))
            versions[(key, item["version_id"])] = stored.version_id
            report.objects += 1
            if progress is not None:
                progress(report.objects + report.already_stored)
    return versions


def _retention_of(item: dict[str, Any], mode: str | None) -> Retention | None:
    """The retention an object had, in this installation's ``mode`` (None: a store without
    Object Lock, or an object that had none)."""
    until = parse_retain_until(str(item.get("retain_until") or ""))
    if until is None or mode is None:
        return None
    return Retention(mode=mode, retain_until=until)


def _write_database(archive: Archive, backup: Backup, versions: dict[tuple[str, str], str],
                    report: RestoreReport) -> None:
    """Every table in one transaction (see the module text); rows the schema refuses roll
    all of it back (exit 2 naming the table's file)."""
    with new_session(archive.engine) as session:
        connection = session.connection()
        refuse_non_empty_database(archive, connection)
        for table in brokerflow_tables():
            path = backup.table_file(table.name)
            try:
                report.tables[table.name] = _insert_table(connection, table, path, versions)
            except sa_exc.DBAPIError as exc:
                if is_busy(exc):
                    raise
                session.rollback()
                problem = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise BadInput(f"the database refused its rows ({problem}); nothing was "
                               "written to the database", file=str(path)) from None
        if connection.dialect.name == "postgresql":
            _move_sequences(connection)
        connection.execute(update(WebSession).where(col(WebSession.ended_at).is_(None))
                           .values(ended_at=utcnow()))
        append_audit(session, actor_id="(restore)", action="restore", details={
            "created_at": backup.manifest.get("created_at"),
            "source_database": backup.manifest.get("source_database"),
            "rows": sum(report.tables.values()),
            "objects": report.objects + report.already_stored})
        session.commit()


def _insert_table(connection: Connection, table: Table, path: Path,
                  versions: dict[tuple[str, str], str]) -> int:
    """Insert one table's rows in batches; how many."""
    decoders = {c.name: decoder(c) for c in table.columns}
    batch: list[dict[str, Any]] = []
    rows = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            row = _row(line, decoders, path=str(path), number=number)
            if table.name == ArchiveEntry.__tablename__:  # the new version ids
                row["version_id"] = versions.get((row["object_key"], row["version_id"]),
                                                 row["version_id"])
            batch.append(row)
            if len(batch) >= BATCH:
                connection.execute(table.insert(), batch)
                rows, batch = rows + len(batch), []
    if batch:
        connection.execute(table.insert(), batch)
        rows += len(batch)
    return rows


def _row(line: str, decoders: dict[str, Callable[[Any], Any]], *, path: str,
         number: int) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except ValueError:
        raise BadInput("not a JSON line", file=path, row=number) from None
    if not isinstance(raw, dict) or set(raw) != set(decoders):
        raise BadInput("its columns are not the table's", file=path, row=number)
    row = {}
    for name, value in raw.items():
        try:
            row[name] = decoders[name](value)
        except (ValueError, TypeError):
            raise BadInput(f"bad value {value!r}", file=path, row=number, column=name) from None
    return row


def _move_sequences(connection: Connection) -> None:
    """Each serial/identity column's sequence past the highest restored id."""
    for table in brokerflow_tables():
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].autoincrement not in (True, "auto"):
            continue
        column = keys[0]
        if not isinstance(column.type, types.Integer):
            continue
        quoted = connection.dialect.identifier_preparer.format_table(table)
        name = connection.dialect.identifier_preparer.quote(column.name)
        connection.execute(text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), "
            f"COALESCE((SELECT MAX({name}) FROM {quoted}), 1), "
            f"(SELECT MAX({name}) FROM {quoted}) IS NOT NULL)"),
            {"table": quoted, "column": column.name})
