"""The object store: one MinIO/S3 bucket with versioning and Object Lock.

Every PUT carries ``Content-MD5`` (minio-py only adds it over HTTPS on its own, and endpoints
that enforce Object Lock refuse a locked PUT without it), so the endpoint itself checks the
bytes; the returned ETag is compared with the MD5 as a second confirmation.  User metadata is
percent-encoded UTF-8 so that Chinese subjects survive HTTP headers.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.error import S3Error
from minio.helpers import genheaders
from minio.objectlockconfig import YEARS, ObjectLockConfig

from brokerflow.errors import IntegrityError, NotFound, StorageError
from brokerflow.settings import Settings

META_PREFIX = "x-amz-meta-"


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    version_id: str
    size: int
    metadata: dict[str, str]
    retention_mode: str = ""
    retain_until: str = ""


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str
    is_latest: bool


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
    ) -> None:
        self.bucket = bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_seconds, 5.0), read=timeout_seconds),
            retries=urllib3.Retry(
                total=retries,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
                allowed_methods=None,  # PUT too: our PUTs are idempotent (same key, same bytes)
            ),
            maxsize=10,
        )
        self.client = Minio(
            endpoint_host, access_key=access_key, secret_key=secret_key, secure=secure,
            region=region, http_client=http,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        return cls(
            endpoint_host=settings.s3_host,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            retries=settings.s3_retries,
            timeout_seconds=settings.s3_timeout_seconds,
        )

    # ------------------------------------------------------------------ bucket

    def ensure_bucket(self, *, retention_years: int, retention_mode: str) -> None:
        """Create the bucket with Object Lock (which implies versioning) and default retention.

        An existing bucket is checked: versioning must be on and Object Lock configured.
        """
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket, object_lock=True)
                self.client.set_object_lock_config(
                    self.bucket, ObjectLockConfig(retention_mode, retention_years, YEARS)
                )
            if self.client.get_bucket_versioning(self.bucket).status != ENABLED:
                raise StorageError(f"bucket {self.bucket!r} exists without versioning")
            if self.lock_mode() != retention_mode:
                self.client.set_object_lock_config(
                    self.bucket, ObjectLockConfig(retention_mode, retention_years, YEARS)
                )
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"cannot prepare bucket {self.bucket!r}: {exc}") from exc

    def lock_mode(self) -> str | None:
        """Mode of the bucket's default retention (GOVERNANCE or COMPLIANCE)."""
        return self.client.get_object_lock_config(self.bucket).mode

    def versioning_enabled(self) -> bool:
        return self.client.get_bucket_versioning(self.bucket).status == ENABLED

    # ------------------------------------------------------------------ objects

    def put(self, key: str, data: bytes, *, metadata: dict[str, str],
            content_type: str = "application/pdf") -> StoredObject:
        """Store ``data`` at ``key`` with Content-MD5; confirm the ETag equals the MD5."""
        md5 = hashlib.md5(data, usedforsecurity=False)
        user_metadata: dict[str, str | list[str] | tuple[str]] = dict(encode_metadata(metadata))
        headers = genheaders(user_metadata, None, None, None, False)
        headers["Content-Type"] = content_type
        headers["Content-MD5"] = base64.b64encode(md5.digest()).decode()
        try:
            # the public put_object() cannot carry Content-MD5 over plain HTTP
            result = self.client._put_object(self.bucket, key, data, headers, None)
        except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"could not store {key}: {exc}") from exc
        etag = (result.etag or "").strip('"')
        if etag != md5.hexdigest():
            raise IntegrityError(
                f"{key}: endpoint answered ETag {etag}, expected {md5.hexdigest()}"
            )
        return StoredObject(key=key, version_id=result.version_id or "", etag=etag)

    def get(self, key: str, *, version_id: str | None = None) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key, version_id=version_id or None)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchBucket"):
                version = version_id or "latest"
                raise NotFound(f"object {key} (version {version}) is missing") from exc
            raise StorageError(f"could not read {key}: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"could not read {key}: {exc}") from exc
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Version id, size, retention and decoded user metadata of one object version."""
        try:
            stat = self.client.stat_object(self.bucket, key, version_id=version_id or None)
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
        )

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version of every object under ``prefix`` (delete markers skipped)."""
        try:
            for obj in self.client.list_objects(
                self.bucket, prefix=prefix, recursive=True, include_version=True
            ):
                if obj.is_delete_marker or obj.object_name is None:
                    continue
                yield ObjectVersion(
                    key=obj.object_name, version_id=obj.version_id or "",
                    is_latest=bool(obj.is_latest and obj.is_latest.lower() == "true"),
                )
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"could not list {self.bucket}/{prefix}: {exc}") from exc
