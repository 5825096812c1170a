"""The durable directory store: the default document store when no S3 endpoint is configured.

SPEC §7: a laptop or a one-branch install keeps every document across restarts without an
S3 server.  The store has the interface of the S3 store (``archive.store.ObjectStore``), so the
archive does not know which one it has.  On disk, under ``<root>/<bucket>/``::

    store.json                               retention policy, written once
    objects/<dirs of the key>/<name>,v/      one directory per key (",v" as in RCS)
        000001.data  000001.json             a version: its bytes, then its record
        .lock                                serialises writers of this key

A version exists once its record (``.json``) is there; the record is linked into place only
after the bytes were written, flushed to disk and read back against their SHA-256, so a crash
or a full disk leaves no half version (a leftover ``.data`` without record is replaced by the
next writer).  Files are created with ``O_EXCL``/``link`` (never overwritten) and made
read-only; every PUT is conditional as on S3: a key that holds bytes is never written again
(the same bytes count as landed, other bytes are an ``IntegrityError``) unless a new version
is asked for (inputs such as a corrected CRM export, never an archived document).

Retention is recorded per version (``retain_until``) and checked by ``verify``; nothing in
brokerflow deletes a version.  This is **not** a legal WORM: whoever administers the machine
can delete files.  Production uses MinIO (or any S3) with Object Lock in COMPLIANCE mode.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from brokerflow.archive.store import ObjectInfo, ObjectVersion, Retention, StoredObject
from brokerflow.kernel.errors import IntegrityError, NotFound, StorageError

VERSION_DIR_SUFFIX = ",v"
GUARANTEE = ("a directory on this machine: write-once files, SHA-256 checked, retention "
             "recorded; not a legal WORM (the machine's administrator can delete files) -- "
             "production uses MinIO/S3 with Object Lock in COMPLIANCE mode")


class DirectoryStore:
    """Write-once, checksummed versions of objects in a directory (see the module text)."""

    kind = "directory"

    def __init__(self, *, root: Path, bucket: str, sync: bool = True) -> None:
        self.root = Path(root)
        self.bucket = bucket
        self.base = self.root / bucket
        self.objects = self.base / "objects"
        self.sync = sync  # fsync files and directories (off only for throwaway benchmarks)

    def location(self, prefix: str = "") -> str:
        """Where ``prefix`` lives, for messages."""
        return str(self.objects / prefix)

    # ------------------------------------------------------------------ bucket

    def ensure_bucket(self, *, retention_years: int, retention_mode: str,
                      strict: bool = True) -> str | None:
        """Create the store's directories and record its retention policy (once); None (the
        store has no warning to give)."""
        policy = self.base / "store.json"
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            if not policy.exists():
                body = json.dumps({"format": 1, "retention_years": retention_years,
                                   "retention_mode": retention_mode,
                                   "created": _now().isoformat()}, sort_keys=True).encode()
                with contextlib.suppress(FileExistsError):  # prepared by another meanwhile
                    self._publish(self.base, "store.json", body)
            recorded = self._policy()
        except OSError as exc:
            raise StorageError(f"cannot prepare the document store {self.base}: "
                               f"{exc.strerror or exc}") from exc
        if recorded.get("retention_mode") == "COMPLIANCE" and retention_mode != "COMPLIANCE":
            raise StorageError(f"the document store {self.base} was created with retention "
                               f"mode COMPLIANCE, not {retention_mode}")
        if not os.access(self.objects, os.W_OK):
            raise StorageError(f"the document store {self.objects} is not writable")
        return None

    def lock_mode(self) -> str | None:
        """The retention mode the store records (not enforced beyond this machine)."""
        try:
            return str(self._policy().get("retention_mode")) or None
        except (OSError, ValueError):
            return None

    def versioning_enabled(self) -> bool:
        return True

    def _policy(self) -> dict[str, object]:
        data = json.loads((self.base / "store.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ objects

    def put(self, key: str, data: bytes, *, metadata: dict[str, str],
            content_type: str = "application/pdf", new_version: bool = False,
            retention: Retention | None = None) -> StoredObject:
        """Store ``data`` at ``key`` once (see the module text); ``StorageError`` when the disk
        refuses (full, read-only, permissions), leaving no half version behind.  The version
        records ``retention`` (else the store's policy from now)."""
        folder = self._folder(key)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with _locked(folder):
                numbers = self._numbers(folder)
                if numbers and not new_version:
                    landed = self.landed(key, md5)
                    if landed is not None:
                        return landed
                number = (numbers[-1] + 1) if numbers else 1
                name = f"{number:06d}"
                policy = self._policy() if (self.base / "store.json").exists() else {}
                years = int(str(policy.get("retention_years", 20)))
                now = _now()
                record = {
                    "key": key, "version_id": name, "size": len(data), "md5": md5,
                    "sha256": hashlib.sha256(data).hexdigest(), "content_type": content_type,
                    "metadata": dict(metadata), "stored_at": now.isoformat(),
                    "retention_mode": retention.mode if retention is not None
                    else str(policy.get("retention_mode", "")),
                    "retain_until": (retention.retain_until.astimezone(UTC).isoformat()
                                     if retention is not None
                                     else _add_years(now, years).isoformat()),
                }
                leftover = folder / f"{name}.data"
                if leftover.exists():  # bytes of a put that died before its record
                    leftover.chmod(0o600)
                    leftover.unlink()
                self._publish(folder, f"{name}.data", data)
                try:
                    if hashlib.sha256(leftover.read_bytes()).hexdigest() != record["sha256"]:
                        raise IntegrityError(f"{key}: the bytes read back differ from those "
                                             "written (disk fault)")
                    self._publish(folder, f"{name}.json",
                                  json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
                except BaseException:
                    leftover.chmod(0o600)
                    leftover.unlink(missing_ok=True)
                    raise
        except OSError as exc:
            raise StorageError(f"could not store {key}: {_reason(exc)}") from exc
        return StoredObject(key=key, version_id=name, etag=md5)

    def landed(self, key: str, md5_hex: str) -> StoredObject | None:
        """The oldest version of ``key`` holding bytes with this MD5, None when the key is
        empty; ``IntegrityError`` when other bytes are there."""
        records = [self._record(key, f"{n:06d}") for n in self._numbers(self._folder(key))]
        if not records:
            return None
        for record in records:
            if record["md5"] == md5_hex:
                return StoredObject(key=key, version_id=str(record["version_id"]),
                                    etag=md5_hex)
        raise IntegrityError(f"{key} already holds other bytes")

    def get(self, key: str, *, version_id: str | None = None) -> bytes:
        """The bytes of one version (the newest by default); ``NotFound`` when missing."""
        name = self._version_name(key, version_id)
        try:
            return (self._folder(key) / f"{name}.data").read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} (version {name}) is missing its bytes") from exc
        except OSError as exc:
            raise StorageError(f"could not read {key}: {_reason(exc)}") from exc

    def stat(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Version id, size, retention and user metadata of one version."""
        record = self._record(key, self._version_name(key, version_id))
        metadata = record.get("metadata")
        return ObjectInfo(version_id=str(record["version_id"]), size=int(str(record["size"])),
                          metadata={str(k): str(v) for k, v in metadata.items()}
                          if isinstance(metadata, dict) else {},
                          retention_mode=str(record.get("retention_mode", "")),
                          retain_until=str(record.get("retain_until", "")),
                          legal_hold=self._hold_path(key, str(record["version_id"])).exists())

    def set_legal_hold(self, key: str, *, version_id: str, on: bool) -> None:
        """Place or lift the legal hold of one version (``<version>.hold`` beside it: a
        flag, not a record; nothing in brokerflow deletes a held or retained version)."""
        name = self._version_name(key, version_id)
        self._record(key, name)  # NotFound for a version that does not exist
        path = self._hold_path(key, name)
        try:
            if on and not path.exists():
                with contextlib.suppress(FileExistsError):
                    self._publish(path.parent, path.name, b"ON")
            elif not on and path.exists():
                path.unlink()
                if self.sync:
                    sync_directory(path.parent)
        except OSError as exc:
            raise StorageError(f"could not {'place' if on else 'lift'} the legal hold of "
                               f"{key}: {_reason(exc)}") from exc

    def _hold_path(self, key: str, name: str) -> Path:
        return self._folder(key) / f"{name}.hold"

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version of every key starting with ``prefix``, keys in order, each key's
        versions newest first."""
        start = self.objects / prefix.rsplit("/", 1)[0] if "/" in prefix else self.objects
        try:
            found = list(self._walk(start, prefix))
        except OSError as exc:
            raise StorageError(f"could not list {self.location(prefix)}: "
                               f"{_reason(exc)}") from exc
        yield from found

    def _walk(self, start: Path, prefix: str) -> Iterator[ObjectVersion]:
        if not start.is_dir():
            return
        for directory, subdirs, _files in os.walk(start):
            subdirs.sort()
            here = Path(directory)
            if not here.name.endswith(VERSION_DIR_SUFFIX):
                continue
            subdirs.clear()
            key = here.relative_to(self.objects).as_posix()[:-len(VERSION_DIR_SUFFIX)]
            if not key.startswith(prefix):
                continue
            numbers = self._numbers(here)
            for number in reversed(numbers):
                record = self._record(key, f"{number:06d}")
                yield ObjectVersion(key=key, version_id=f"{number:06d}",
                                    is_latest=number == numbers[-1], etag=str(record["md5"]))

    # ------------------------------------------------------------------ files

    def _folder(self, key: str) -> Path:
        parts = key.split("/")
        if (not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts)
                or key.endswith(VERSION_DIR_SUFFIX) or "\x00" in key):
            raise StorageError(f"{key!r} is not a key this store takes")
        return self.objects.joinpath(*parts[:-1], parts[-1] + VERSION_DIR_SUFFIX)

    @staticmethod
    def _numbers(folder: Path) -> list[int]:
        """Version numbers with a record, ascending."""
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def _version_name(self, key: str, version_id: str | None) -> str:
        if version_id:
            if not version_id.isdigit():
                raise NotFound(f"object {key} (version {version_id}) is missing")
            return version_id
        numbers = self._numbers(self._folder(key))
        if not numbers:
            raise NotFound(f"object {key} (version latest) is missing")
        return f"{numbers[-1]:06d}"

    def _record(self, key: str, name: str) -> dict[str, object]:
        path = self._folder(key) / f"{name}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFound(f"object {key} (version {name}) is missing") from exc
        except (OSError, ValueError) as exc:
            raise StorageError(f"the record of {key} (version {name}) is unreadable: "
                               f"{exc}") from exc
        if not isinstance(record, dict):
            raise StorageError(f"the record of {key} (version {name}) is unreadable")
        return record

    def _publish(self, folder: Path, name: str, body: bytes) -> None:
        """Write ``body`` to a private temporary file, flush it, then link it into place as
        ``name`` (``FileExistsError`` when something is there: never overwritten)."""
        temporary = folder / f".{name}.{uuid.uuid4().hex}.partial"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                if self.sync:
                    os.fsync(out.fileno())
            os.chmod(temporary, 0o400)
            os.link(temporary, folder / name)
        finally:
            temporary.unlink(missing_ok=True)
        if self.sync:
            sync_directory(folder)


class _locked:
    """An exclusive ``flock`` on the key's folder for the duration of a put."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".lock"

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def sync_directory(folder: Path) -> None:
    """Flush a directory's entries to disk (a new file's name survives a crash)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exhausted"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)
