"""The object store: one MinIO/S3 bucket with versioning and Object Lock.

Every PUT carries ``Content-MD5`` (minio-py only adds it over HTTPS on its own, and endpoints
that enforce Object Lock refuse a locked PUT without it), so the endpoint itself checks the
bytes; the returned ETag is compared with the MD5 as a second confirmation.  User metadata is
percent-encoded UTF-8 so that Chinese subjects survive HTTP headers.

Outages are waited out within ``retry_seconds`` per operation (backoff 0.5 s doubling to 8 s).
Reads are simply repeated.  A PUT is repeated only as a conditional write (``If-None-Match:
*``, honoured by S3, MinIO and moto): an upload whose outcome was unknown (a timeout, a dropped
connection, a 5xx) and that landed after all is found, never written a second time.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote, unquote

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.error import S3Error
from minio.helpers import genheaders
from minio.objectlockconfig import YEARS, ObjectLockConfig
from minio.versioningconfig import VersioningConfig

from brokerflow.kernel.errors import IntegrityError, NotFound, StorageError
from brokerflow.kernel.settings import Settings

META_PREFIX = "x-amz-meta-"
#: S3 error codes that say nothing about whether a request took effect (try again later).
TRANSIENT_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown",
                             "RequestTimeout", "OperationAborted"})
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str
    etag: str


@dataclass(frozen=True)
class Retention:
    """Per-object retention written with an object: its mode and the moment it ends."""

    mode: str  # COMPLIANCE (production) or GOVERNANCE (development only)
    retain_until: datetime  # aware

    def header_value(self) -> str:
        """``x-amz-object-lock-retain-until-date`` as S3 wants it (ISO 8601, UTC, 'Z')."""
        return self.retain_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class ObjectInfo:
    version_id: str
    size: int
    metadata: dict[str, str]
    retention_mode: str = ""
    retain_until: str = ""  # ISO 8601 as the store answers it; '' when the object has none
    legal_hold: bool = False

    def retained_until(self) -> datetime | None:
        """``retain_until`` as an aware datetime (None when absent or unreadable)."""
        return parse_retain_until(self.retain_until)


def parse_retain_until(text: str) -> datetime | None:
    """A retain-until date as a store answers it (ISO 8601, 'Z' or an offset), aware; None
    when absent or unreadable."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str
    is_latest: bool
    etag: str = ""


def encode_metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {k: quote(v, safe="") for k, v in metadata.items()}


def decode_metadata(headers: dict[str, str]) -> dict[str, str]:
    """User metadata from response headers, without the prefix, decoded."""
    return {
        k.lower()[len(META_PREFIX):]: unquote(v)
        for k, v in headers.items()
        if k.lower().startswith(META_PREFIX)
    }


class ObjectStore:
    """Small wrapper around the minio client: the few calls the archive needs."""

    kind = "s3"

    def __init__(
        self,
        *,
        endpoint_host: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        retries: int = 3,
        timeout_seconds: float = 10.0,
        retry_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bucket = bucket
        self.endpoint = f"{'https' if secure else 'http'}://{endpoint_host}"
        self.retry_seconds = retry_seconds
        self._sleep = sleep
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_seconds, 5.0), read=timeout_seconds),
            retries=urllib3.Retry(
                total=retries,
                read=0,  # a request that may have arrived is not sent again here
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
                allowed_methods=frozenset({"GET", "HEAD"}),  # never a PUT: see put()
            ),
            maxsize=10,
        )
        self.client = Minio(
            endpoint_host, access_key=access_key, secret_key=secret_key, secure=secure,
            region=region, http_client=http,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, bucket: str | None = None) -> ObjectStore:
        """The store of ``settings``' endpoint; ``bucket`` instead of the records bucket."""
        return cls(
            endpoint_host=settings.s3_host,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=bucket or settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            retries=settings.s3_retries,
            timeout_seconds=settings.s3_timeout_seconds,
            retry_seconds=settings.s3_retry_seconds,
        )

    def location(self, prefix: str = "") -> str:
        """Where ``prefix`` lives, for messages."""
        return f"s3://{self.bucket}/{prefix}"

    # ------------------------------------------------------------------ bucket

    def ensure_bucket(self, *, retention_years: int, retention_mode: str,
                      strict: bool = True) -> str | None:
        """Create the bucket with Object Lock (which implies versioning) and default retention.

        An existing bucket is checked: versioning must be on and Object Lock configured in
        ``retention_mode``.  An endpoint without Object Lock, or refusing the mode, is a
        ``StorageError`` saying so -- unless not ``strict`` (development), where the bucket is
        used as it is and the warning is returned.
        """
        what = f"bucket {self.bucket!r} at {self.endpoint}"
        try:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket, object_lock=True)
                except S3Error as exc:
                    if strict:
                        raise StorageError(f"the S3 endpoint {self.endpoint} cannot create a "
                                           f"bucket with Object Lock ({exc.code}): records "
                                           "need a WORM store") from exc
                    self.client.make_bucket(self.bucket)
                    self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
            mode = self.lock_mode()
            if mode is None:
                problem = (f"{what} has no Object Lock: objects could be deleted or "
                           "overwritten; create the bucket with Object Lock enabled")
                if strict:
                    raise StorageError(problem)
                if not self.versioning_enabled():
                    self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
                return problem + " (allowed in development mode only)"
            if self.client.get_bucket_versioning(self.bucket).status != ENABLED:
                raise StorageError(f"{what} exists without versioning")
            if mode != retention_mode:
                try:
                    self.client.set_object_lock_config(
                        self.bucket, ObjectLockConfig(retention_mode, retention_years, YEARS))
                except S3Error as exc:
                    raise StorageError(f"{what} refuses Object Lock in {retention_mode} mode "
                                       f"({exc.code}: {exc.message})") from exc
                if self.lock_mode() != retention_mode:
                    raise StorageError(f"{what} does not keep Object Lock in {retention_mode} "
                                       "mode (it answers another mode after being set)")
        except S3Error as exc:
            raise StorageError(f"cannot prepare {what}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(self.unreachable(f"cannot prepare bucket {self.bucket!r}")
                               ) from exc
        return None

    def probe_retention(self, *, mode: str, until: datetime) -> str | None:
        """Write a small probe object with ``mode`` retention until ``until`` and read it
        back: None when the endpoint keeps it, else what it did instead (an endpoint that
        refuses COMPLIANCE, or ignores per-object retention)."""
        key = f"brokerflow-probe/retention-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        try:
            stored = self.put(key, b"retention probe", metadata={"probe": "retention"},
                              content_type="text/plain", retention=Retention(mode, until))
            info = self.stat(key, version_id=stored.version_id)
        except (StorageError, IntegrityError) as exc:
            return f"the endpoint refuses per-object retention in {mode} mode: {exc}"
        if info.retention_mode != mode or info.retained_until() is None:
            return (f"the endpoint does not keep per-object retention in {mode} mode "
                    f"(it answers mode {info.retention_mode or 'none'!r})")
        return None

    def unreachable(self, what: str) -> str:
        """The message for an endpoint that does not answer: which one, and what to do."""
        return (f"{what}: the S3 endpoint {self.endpoint} does not answer; start it or set "
                "BROKERFLOW_S3_ENDPOINT to the right address ('brokerflow doctor' checks every "
                "service)")

    def lock_mode(self) -> str | None:
        """Mode of the bucket's default retention (GOVERNANCE or COMPLIANCE; '' for Object
        Lock without a default rule); None when the bucket has no Object Lock."""
        try:
            return self.client.get_object_lock_config(self.bucket).mode or ""
        except S3Error as exc:
            if exc.code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
                return None
            raise

    def versioning_enabled(self) -> bool:
        return self.client.get_bucket_versioning(self.bucket).status == ENABLED

    # ------------------------------------------------------------------ waiting out outages

    def _patiently(self, what: str, operation: Callable[[], T]) -> T:
        """Run a read, repeating it while the endpoint is unreachable, up to ``retry_seconds``.

        ``NotFound`` and definite S3 errors are not repeated.
        """
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                return operation()
            except S3Error as exc:
                if exc.code not in TRANSIENT_CODES:
                    raise
                last: Exception = exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
            if time.monotonic() + delay > deadline:
                detail = (self.unreachable(f"could not {what} within "
                                           f"{self.retry_seconds:.0f} s")
                          if not isinstance(last, S3Error) else
                          f"could not {what} within {self.retry_seconds:.0f} s: {last}")
                raise StorageError(detail) from last
            self._sleep(delay)
            delay = min(delay * 2, 8.0)

    # ------------------------------------------------------------------ objects

    def put(self, key: str, data: bytes, *, metadata: dict[str, str],
            content_type: str = "application/pdf", new_version: bool = False,
            retention: Retention | None = None) -> StoredObject:
        """Store ``data`` at ``key`` with Content-MD5, once; confirm the ETag equals the MD5.

        ``retention`` is written with the object (``x-amz-object-lock-mode`` and
        ``-retain-until-date``), so every S3 client reads it on the object itself.

        Every PUT is conditional (``If-None-Match: *``: only if the key is empty), so sending
        it again after an unknown outcome cannot make a second version: when the first one
        landed meanwhile, the endpoint answers 412 and the version holding these bytes is
        taken as stored; other bytes at the key are an ``IntegrityError``.  ``StorageError``
        after ``retry_seconds``.  ``new_version`` (inputs such as a corrected CRM export, never
        an archived document) drops the condition: the bytes become the key's newest version.
        """
        md5 = hashlib.md5(data, usedforsecurity=False)
        user_metadata: dict[str, str | list[str] | tuple[str]] = dict(encode_metadata(metadata))
        headers = genheaders(user_metadata, None, None, None, False)
        headers["Content-Type"] = content_type
        headers["Content-MD5"] = base64.b64encode(md5.digest()).decode()
        if not new_version:
            headers["If-None-Match"] = "*"
        if retention is not None:
            headers["x-amz-object-lock-mode"] = retention.mode
            headers["x-amz-object-lock-retain-until-date"] = retention.header_value()
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                # the public put_object() cannot carry Content-MD5 over plain HTTP
                result = self.client._put_object(self.bucket, key, data, headers, None)
                break
            except S3Error as exc:
                if exc.code == "PreconditionFailed":  # the key holds a version already
                    landed = self._patiently(f"list {key}",
                                             lambda: self.landed(key, md5.hexdigest()))
                    if landed is None:
                        raise StorageError(f"{key}: the endpoint says it exists but lists "
                                           "no version of it") from exc
                    return landed
                if exc.code not in TRANSIENT_CODES:
                    raise StorageError(f"could not store {key}: {exc}") from exc
                last: Exception = exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
            if time.monotonic() + delay > deadline:  # outcome unknown: try again later
                raise StorageError(
                    self.unreachable(f"could not store {key} within {self.retry_seconds:.0f} s")
                    if not isinstance(last, S3Error) else
                    f"could not store {key} within {self.retry_seconds:.0f} s: {last}") from last
            self._sleep(delay)
            delay = min(delay * 2, 8.0)
        etag = (result.etag or "").strip('"')
        if etag != md5.hexdigest():
            raise IntegrityError(
                f"{key}: endpoint answered ETag {etag}, expected {md5.hexdigest()}"
            )
        return StoredObject(key=key, version_id=result.version_id or "", etag=etag)

    def landed(self, key: str, md5_hex: str) -> StoredObject | None:
        """The oldest version of ``key`` holding bytes with this MD5, None when the key is
        empty; ``IntegrityError`` when other bytes are there.  One attempt (S3 and network
        errors are raised as they are)."""
        found = [v for v in self._list_versions(key) if v.key == key]
        if not found:
            return None
        same = [v for v in found if v.etag == md5_hex]
        if not same:
            raise IntegrityError(f"{key} already holds other bytes")
        oldest = same[-1]  # listings are newest first
        return StoredObject(key=key, version_id=oldest.version_id, etag=oldest.etag)

    def get(self, key: str, *, version_id: str | None = None) -> bytes:
        def read() -> bytes:
            response = self.client.get_object(self.bucket, key, version_id=version_id or None)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return self._patiently(f"read {key}", read)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchBucket"):
                version = version_id or "latest"
                raise NotFound(f"object {key} (version {version}) is missing") from exc
            raise StorageError(f"could not read {key}: {exc}") from exc

    def stat(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Version id, size, retention and decoded user metadata of one object version."""
        try:
            stat = self._patiently(f"stat {key}", lambda: self.client.stat_object(
                self.bucket, key, version_id=version_id or None))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchBucket", "ResourceNotFound"):
                raise NotFound(f"object {key} is missing") from exc
            raise StorageError(f"could not stat {key}: {exc}") from exc
        headers = dict(stat.metadata or {})
        return ObjectInfo(
            version_id=stat.version_id or "", size=stat.size or 0,
            metadata=decode_metadata(headers),
            retention_mode=headers.get("x-amz-object-lock-mode", ""),
            retain_until=headers.get("x-amz-object-lock-retain-until-date", ""),
            legal_hold=headers.get("x-amz-object-lock-legal-hold", "").upper() == "ON",
        )

    def set_legal_hold(self, key: str, *, version_id: str, on: bool) -> None:
        """Place (``on``) or lift the S3 legal hold of one object version."""
        def change() -> None:
            if on:
                self.client.enable_object_legal_hold(self.bucket, key, version_id or None)
            else:
                self.client.disable_object_legal_hold(self.bucket, key, version_id or None)

        try:
            self._patiently(f"{'hold' if on else 'release'} {key}", change)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion"):
                raise NotFound(f"object {key} is missing") from exc
            raise StorageError(f"could not {'place' if on else 'lift'} the legal hold of "
                               f"{key}: {exc}") from exc

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version of every object under ``prefix`` (delete markers skipped), each key's
        versions newest first."""
        try:
            yield from self._patiently(f"list {self.bucket}/{prefix}",
                                       lambda: list(self._list_versions(prefix)))
        except S3Error as exc:
            raise StorageError(f"could not list {self.bucket}/{prefix}: {exc}") from exc

    def _list_versions(self, prefix: str) -> Iterator[ObjectVersion]:
        for obj in self.client.list_objects(
            self.bucket, prefix=prefix, recursive=True, include_version=True
        ):
            if obj.is_delete_marker or obj.object_name is None:
                continue
            yield ObjectVersion(
                key=obj.object_name, version_id=obj.version_id or "",
                is_latest=bool(obj.is_latest and obj.is_latest.lower() == "true"),
                etag=(obj.etag or "").strip('"'),
            )
