"""Retention and integrity anyone can verify from outside (SPEC §5): per-object retention read
back with boto3 (an S3 client that is not ours), inputs kept apart from the records, every
archived PDF signed (PAdES) -- and what happens when a store or the signing key falls short."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sqlmodel import select

from brokerflow.app.stack import prepare_retention_and_signing
from brokerflow.archive.layout import void_marker_key
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.archive.signing import check_signature, key_files, trust_roots
from brokerflow.kernel.calendar import add_years
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import SigningUnavailable, StorageError, UnsafeSettings
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import ArchiveEntry, SerialRecord
from brokerflow.kernel.settings import load_settings


def s3_client(settings: Any) -> Any:
    """boto3, independent of brokerflow's minio client."""
    return boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name="us-east-1",
                        aws_access_key_id=settings.s3_access_key,
                        aws_secret_access_key=settings.s3_secret_key,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def retention_of(s3: Any, bucket: str, key: str, kind: str) -> tuple[str, datetime]:
    """The object's own retention as S3 answers it.  moto 5.2.5 does not implement
    GetObjectRetention (it answers with the object's body), so there HeadObject's
    x-amz-object-lock-* headers are read; MinIO answers both."""
    if kind == "minio":
        answer = s3.get_object_retention(Bucket=bucket, Key=key)["Retention"]
        return answer["Mode"], answer["RetainUntilDate"]
    head = s3.head_object(Bucket=bucket, Key=key)
    return head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]


def archive_scan(archive: Archive, make_pdf: Callable[..., bytes], actor: UserView,
                 subject: str) -> str:
    return archive.put(make_pdf(subject), DocumentSpec(
        branch="SZ01", doc_type="EXT", subject=subject, subject_key="", cm_id="cm1"),
        actor=actor).serial


def failed_render(serial: str) -> bytes:
    raise RuntimeError(f"template broke for {serial}")


def test_records_voids_and_inputs_carry_their_own_compliance_retention(
    archive: Archive, roster: None, user: Callable[[str], UserView],
    make_pdf: Callable[..., bytes], s3_endpoint: Any,
) -> None:
    settings = archive.settings
    serial = archive_scan(archive, make_pdf, user("cc1"), "客户签字确认书扫描件")
    with pytest.raises(RuntimeError):
        archive.archive_rendered(DocumentSpec(branch="SZ01", doc_type="FOP", subject="会签",
                                              subject_key="fop:1"),
                                 failed_render, actor=user("cc1"))
    with new_session(archive.engine) as session:
        entry = session.get(ArchiveEntry, serial)
        void = session.exec(select(SerialRecord).where(SerialRecord.status == "void")).one()
    assert entry is not None
    archive.put_input("crm/SZ01/2026-10/staff.csv", b"cm_id,name\ncm1,X\n",
                      metadata={"sha256": hashlib.sha256(b"cm_id,name\ncm1,X\n").hexdigest()},
                      content_type="text/csv")
    s3 = s3_client(settings)
    lock = s3.get_object_lock_configuration(Bucket=settings.s3_bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    rule = lock["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Years"]) == ("COMPLIANCE", 20)
    mode, until = retention_of(s3, settings.s3_bucket, entry.object_key, s3_endpoint.kind)
    expected = add_years(entry.created_at.astimezone(UTC), 20)
    assert mode == "COMPLIANCE" and abs(until - expected) < timedelta(seconds=2)
    mode, until = retention_of(s3, settings.s3_bucket, void_marker_key(void.serial),
                               s3_endpoint.kind)
    assert mode == "COMPLIANCE" and until > add_years(datetime.now(UTC), 19)
    # inputs live in their own bucket with their own retention, never among the records
    assert settings.s3_inputs_bucket == settings.s3_bucket + "-inputs"
    mode, until = retention_of(s3, settings.s3_inputs_bucket, "crm/SZ01/2026-10/staff.csv",
                               s3_endpoint.kind)
    assert mode == "COMPLIANCE" and until > add_years(datetime.now(UTC), 19)
    records = s3.list_object_versions(Bucket=settings.s3_bucket).get("Versions", [])
    assert records and not [v for v in records if v["Key"].startswith("crm/")]
    # an independent client cannot remove a record
    version = s3.head_object(Bucket=settings.s3_bucket, Key=entry.object_key)["VersionId"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=settings.s3_bucket, Key=entry.object_key, VersionId=version)
    report = archive.verify(signatures=True)
    assert report.ok, report.problems
    assert (report.checked, report.signatures_checked, report.inputs_checked) == (1, 1, 1)


def test_verify_reports_retention_that_is_weaker_or_shorter_like_a_hash_mismatch(
    archive: Archive, roster: None, user: Callable[[str], UserView],
    make_pdf: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch, cli: Any,
) -> None:
    first = archive_scan(archive, make_pdf, user("cc1"), "第一份")
    second = archive_scan(archive, make_pdf, user("cc1"), "第二份")
    assert archive.verify().ok
    with new_session(archive.engine) as session:
        entry = session.get(ArchiveEntry, second)
    assert entry is not None
    # moto lets a bypass weaken COMPLIANCE (real S3 and MinIO refuse): a tampered store
    s3 = s3_client(archive.settings)
    s3.put_object_retention(
        Bucket=archive.settings.s3_bucket, Key=entry.object_key, VersionId=entry.version_id,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)},
        BypassGovernanceRetention=True)
    problems = archive.verify().problems
    assert problems == [f"{second}: the object is retained in GOVERNANCE mode, not COMPLIANCE"]
    # the policy grew to 30 years: every record kept for 20 falls short, named one by one
    monkeypatch.setenv("BROKERFLOW_RETENTION_YEARS", "30")
    longer = open_archive(load_settings(), prepare_bucket=False)
    problems = longer.verify().problems
    assert len(problems) == 2 and problems[0].startswith(f"{first}: the object is retained "
                                                         "only until")
    assert "the policy asks for" in problems[0]
    result = cli("archive", "verify", user="comp1")
    assert result.code == 1 and result.out.count("PROBLEM") == 2, result.out


def test_production_refuses_a_bucket_without_object_lock_and_development_warns(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, cli: Any, tmp_path: Path,
    make_pdf: Callable[..., bytes],
) -> None:
    settings = load_settings()
    s3_client(settings).create_bucket(Bucket=settings.s3_bucket)  # no Object Lock
    with pytest.raises(StorageError, match="has no Object Lock"):
        open_archive(settings)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf("扫描件"))
    result = cli("archive", "put", str(scan), "--branch", "SZ01", "--type", "EXT",
                 "--subject", "扫描件", user="cc1")
    assert result.code != 0 and "has no Object Lock" in result.err
    assert "Traceback" not in result.err
    with pytest.raises(UnsafeSettings, match="GOVERNANCE"):
        monkeypatch.setenv("BROKERFLOW_RETENTION_MODE", "GOVERNANCE")
        load_settings()
    monkeypatch.delenv("BROKERFLOW_RETENTION_MODE")
    monkeypatch.setenv("BROKERFLOW_DEV", "1")  # development: allowed, with a warning
    dev = open_archive(load_settings())
    assert dev.settings.retention_mode == "GOVERNANCE"
    assert dev.store_warnings and "has no Object Lock" in dev.store_warnings[0]
    said = prepare_retention_and_signing(dev)
    assert said[0].startswith("Retention:    GOVERNANCE, 20 years per object (DEVELOPMENT")
    assert any("WARNING" in line and "no Object Lock" in line for line in said)


def test_up_in_production_probes_compliance_and_creates_the_signing_key(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKERFLOW_SIGNING_DIR", str(tmp_path / "fresh-keys"))
    archive = open_archive(load_settings())
    said = prepare_retention_and_signing(archive)
    assert said[0] == ("Retention:    COMPLIANCE, 20 years per object (production: nobody "
                       "can shorten or delete)")
    files = key_files(archive.settings)
    assert files.signing_key.is_file() and oct(files.signing_key.stat().st_mode)[-3:] == "600"
    assert b"ENCRYPTED" in files.signing_key.read_bytes()
    assert any(line.startswith("Signing:      PAdES") and "created now" in line
               for line in said)
    probes = [v for v in archive.store.versions("brokerflow-probe/")]
    assert len(probes) == 1  # the probe object, kept a day
    info = archive.store.stat(probes[0].key)
    assert info.retention_mode == "COMPLIANCE"


def test_without_its_signing_key_the_archive_voids_the_serial_and_stores_nothing(
    archive: Archive, roster: None, user: Callable[[str], UserView],
    make_pdf: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch, cli: Any, tmp_path: Path,
) -> None:
    files = key_files(archive.settings)
    moved = files.signing_key.rename(tmp_path / "elsewhere.key")
    with pytest.raises(SigningUnavailable, match="brokerflow up"):
        archive_scan(archive, make_pdf, user("cc1"), "无钥")
    moved.rename(files.signing_key)
    monkeypatch.setenv("BROKERFLOW_SIGNING_KEY_PASSPHRASE", "a-different-passphrase-0123456789")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf("错钥"))
    result = cli("archive", "put", str(scan), "--branch", "SZ01", "--type", "EXT",
                 "--subject", "错钥", user="cc1")
    assert result.code != 0 and "Traceback" not in result.err
    assert "BROKERFLOW_SIGNING_KEY_PASSPHRASE" in result.err
    with new_session(archive.engine) as session:
        records = list(session.exec(select(SerialRecord).order_by(SerialRecord.serial)))
        stored = list(session.exec(select(ArchiveEntry)))
    assert [r.status for r in records] == ["void", "void"] and not stored
    assert all(r.reason.startswith("not signed:") for r in records)
    keys = [v.key for v in archive.store.versions()]
    assert not [k for k in keys if k.endswith(".pdf")]  # nothing archived unsigned
    assert sorted(k for k in keys if k.endswith(".void")) == sorted(
        void_marker_key(r.serial) for r in records)


def test_verify_signatures_catches_a_document_changed_by_one_byte(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, roster_cli: Any,
    cli: Any, make_pdf: Callable[..., bytes],
) -> None:
    store_root = tmp_path / "store"
    scan = tmp_path / "scan.pdf"
    serials = []
    for subject in ("甲", "乙"):
        scan.write_bytes(make_pdf(subject))
        result = cli("archive", "put", str(scan), "--branch", "SZ01", "--type", "EXT",
                     "--subject", subject, user="cc1")
        assert result.code == 0, result.err
        serials.append(result.out.strip())
    clean = cli("archive", "verify", "--signatures", user="comp1")
    assert clean.code == 0 and "checked 2 document(s), 2 signature(s)" in clean.out, clean.out
    data_file = next(p for p in store_root.rglob("000001.data") if serials[1] in str(p))
    data = bytearray(data_file.read_bytes())
    at = data.index(b"/Type /Page") if b"/Type /Page" in data else len(data) // 3
    data[at + 1] ^= 0x01  # one byte, inside the signed range
    data_file.chmod(0o600)
    data_file.write_bytes(bytes(data))
    result = cli("archive", "verify", "--signatures", user="comp1")
    assert result.code == 1
    problems = [line for line in result.out.splitlines() if line.startswith("PROBLEM")]
    assert problems[0] == f"PROBLEM {serials[1]}: indexed version does not match its SHA-256"
    assert problems[1].startswith(f"PROBLEM {serials[1]}: signature: ")
    assert len(problems) == 2  # the other document is untouched
    roots = trust_roots(load_settings())
    assert not check_signature(bytes(data), trust_roots=roots).ok


@pytest.fixture
def roster_cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
               cli: Any) -> None:
    """The directory store (no S3 endpoint) with the sample roster loaded."""
    monkeypatch.delenv("BROKERFLOW_S3_ENDPOINT")
    monkeypatch.setenv("BROKERFLOW_STORE_DIR", str(tmp_path / "store"))
    from tests.support.paths import ROSTER_CSV

    assert cli("roster", "load", str(ROSTER_CSV)).code == 0


def test_inputs_are_checked_by_verify_and_counted_by_rebuild(
    archive: Archive, roster: None, cli: Any,
) -> None:
    body = b"cm_id,name\ncm1,X\n"
    archive.put_input("crm/SZ01/2026-10/staff.csv", body,
                      metadata={"sha256": hashlib.sha256(body).hexdigest()},
                      content_type="text/csv")
    archive.put_input("crm/SZ01/2026-10/staff.csv", body + b"cm2,Y\n",
                      metadata={"sha256": "0" * 64}, content_type="text/csv")  # recorded wrong
    result = cli("archive", "verify", user="comp1")
    assert result.code == 1
    assert "does not match its SHA-256" in result.out and "2 input version(s)" in result.out
    rebuilt = cli("archive", "rebuild-index", user="comp1")
    assert rebuilt.code == 0 and "2 input version(s) found apart" in rebuilt.out
    # an input left in the record series by an older release is a finding
    archive.store.put("crm/SZ01/2026-09/staff.csv", body, metadata={}, content_type="text/csv",
                      new_version=True)
    assert any("an input kept in the record series" in p for p in archive.verify().problems)
