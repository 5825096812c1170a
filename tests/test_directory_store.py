"""The durable directory store (SPEC §7): the default when no S3 endpoint is configured.

The same archive code runs on it: write-once versions, checksums, retention, void markers,
``verify`` and ``rebuild-index``; a crash or a full disk leaves no half version."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from brokerflow.archive.directory_store import DirectoryStore
from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import IntegrityError, NotFound, StorageError
from brokerflow.kernel.models import ArchiveEntry, SerialRecord
from brokerflow.kernel.settings import load_settings

YEAR = datetime.now(ZoneInfo("Asia/Shanghai")).year


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's settings without an S3 endpoint: the directory store keeps the documents."""
    monkeypatch.delenv("BROKERFLOW_S3_ENDPOINT")
    monkeypatch.setenv("BROKERFLOW_STORE_DIR", str(tmp_path / "store"))
    return {k: v for k, v in env.items() if k != "BROKERFLOW_S3_ENDPOINT"}


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    made = DirectoryStore(root=tmp_path / "plain", bucket="docs")
    made.ensure_bucket(retention_years=20, retention_mode="GOVERNANCE")
    return made


def put_scan(cli, tmp_path: Path, make_pdf, subject: str = "客户签字确认书扫描件"):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(subject))
    return cli("archive", "put", str(path), "--branch", "SZ01", "--type", "EXT",
               "--subject", subject, user="cc1")


def test_versions_are_written_once_checked_and_kept_read_only(store: DirectoryStore) -> None:
    first = store.put("SZ01/EXT/2026/a.pdf", b"%PDF one", metadata={"subject": "扫描件"})
    assert store.put("SZ01/EXT/2026/a.pdf", b"%PDF one", metadata={}) == first  # landed
    with pytest.raises(IntegrityError, match="other bytes"):
        store.put("SZ01/EXT/2026/a.pdf", b"%PDF two", metadata={})
    assert store.get("SZ01/EXT/2026/a.pdf") == b"%PDF one"
    info = store.stat("SZ01/EXT/2026/a.pdf")
    assert info.metadata == {"subject": "扫描件"} and info.size == 8
    assert info.retention_mode == "GOVERNANCE" and int(info.retain_until[:4]) >= YEAR + 19
    export = store.put("crm/SZ01/2026-10/clients.csv", b"v1", metadata={}, new_version=True)
    newer = store.put("crm/SZ01/2026-10/clients.csv", b"v2", metadata={}, new_version=True)
    assert (export.version_id, newer.version_id) == ("000001", "000002")
    assert store.get("crm/SZ01/2026-10/clients.csv") == b"v2"
    assert store.get("crm/SZ01/2026-10/clients.csv", version_id="000001") == b"v1"
    listed = [(v.key, v.version_id, v.is_latest) for v in store.versions("crm/")]
    assert listed == [("crm/SZ01/2026-10/clients.csv", "000002", True),
                      ("crm/SZ01/2026-10/clients.csv", "000001", False)]
    assert [v.key for v in store.versions()] == ["SZ01/EXT/2026/a.pdf", *["crm/SZ01/2026-10/"
                                                 "clients.csv"] * 2]
    files = [p for p in store.objects.rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and all(p.stat().st_mode & 0o777 == 0o400 for p in files)
    with pytest.raises(NotFound):
        store.get("SZ01/EXT/2026/missing.pdf")
    for hostile in ("../outside", "/etc/passwd", "a//b", "a/./b", "x,v"):
        with pytest.raises(StorageError, match="not a key"):
            store.put(hostile, b"x", metadata={})


def test_a_put_that_died_before_its_record_leaves_no_version(store: DirectoryStore) -> None:
    folder = store.objects / "SZ01" / "EXT" / "2026" / "b.pdf,v"
    folder.mkdir(parents=True)
    (folder / "000001.data").write_bytes(b"half written")  # the process died here
    assert list(store.versions("SZ01/")) == []
    with pytest.raises(NotFound):
        store.get("SZ01/EXT/2026/b.pdf")
    stored = store.put("SZ01/EXT/2026/b.pdf", b"%PDF whole", metadata={})
    assert stored.version_id == "000001" and store.get("SZ01/EXT/2026/b.pdf") == b"%PDF whole"


def test_the_archive_runs_on_the_directory_store_verify_and_rebuild(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    assert archive.store.kind == "directory"
    assert archive.store.location().startswith(str(tmp_path / "store"))
    put = put_scan(cli, tmp_path, make_pdf)
    assert put.code == 0, put.err
    serial = put.out.strip()
    got = cli("archive", "get", serial, "--out", str(tmp_path / "back.pdf"), user="bm1")
    assert got.code == 0, got.err
    assert (tmp_path / "back.pdf").read_bytes().startswith((tmp_path / "scan.pdf").read_bytes())
    verified = cli("archive", "verify", user="admin1")
    assert verified.code == 0, verified.out + verified.err
    # tamper with the bytes as the machine's administrator could: verify names the serial
    data_file = next(archive.store.objects.rglob("000001.data"))
    archived = data_file.read_bytes()
    data_file.chmod(0o600)
    data_file.write_bytes(b"%PDF forged")
    tampered = cli("archive", "verify", user="admin1")
    assert tampered.code == 1 and serial in tampered.out + tampered.err
    data_file.write_bytes(archived)
    # the index comes back from the store alone, voids included
    with new_session(archive.engine) as session:
        for row in session.exec(select(ArchiveEntry)):
            session.delete(row)
        for record in session.exec(select(SerialRecord)):
            session.delete(record)
        session.commit()
    rebuilt = cli("archive", "rebuild-index", user="admin1")
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    with new_session(archive.engine) as session:
        records = {r.serial: r.status for r in session.exec(select(SerialRecord))}
        entry = session.get(ArchiveEntry, serial)
    assert records == {serial: "stored"} and entry is not None
    assert entry.sha256 == hashlib.sha256(archive.store.get(entry.object_key)).hexdigest()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB file system for the store (tmpfs; needs root, as CI has)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_voids_the_serial_with_its_reason_and_orphans_nothing(
    cli, tiny_disk: Path, roster: None, tmp_path: Path, make_pdf,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKERFLOW_STORE_DIR", str(tiny_disk))
    archive = open_archive(load_settings())
    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # fill the disk to the last block
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    put = put_scan(cli, tmp_path, make_pdf)
    assert put.code == 5 and "disk is full" in put.err, put.err
    with new_session(archive.engine) as session:
        records = list(session.exec(select(SerialRecord)))
    assert [(r.status, "disk is full" in r.reason) for r in records] == [("void", True)]
    leftovers = [p.name for p in archive.store.objects.rglob("*")
                 if p.is_file() and p.name != ".lock"]
    assert [n for n in leftovers if n.endswith((".data", ".partial"))] == []
    assert list(archive.store.versions()) == []
    filler.unlink()  # space again: verify writes the void marker the full disk refused
    verified = cli("archive", "verify", user="admin1")
    assert verified.code == 0, verified.out + verified.err
    markers = [v.key for v in archive.store.versions() if v.key.endswith(".void")]
    assert markers == [f"SZ01/EXT/{YEAR}/{records[0].serial}.void"]
    marker = json.loads(archive.store.get(markers[0]))
    assert "disk is full" in marker["reason"]
    with new_session(archive.engine) as session:  # the index lost: the void comes back
        for record in session.exec(select(SerialRecord)):
            session.delete(record)
        session.commit()
    rebuilt = cli("archive", "rebuild-index", user="admin1")
    assert rebuilt.code == 0 and "1 void number(s) kept" in rebuilt.out, rebuilt.out
    again = put_scan(cli, tmp_path, make_pdf)
    assert again.code == 0, again.err
    assert again.out.strip() == f"SZ01-EXT-{YEAR}-000002"  # a void number is never reused
    assert os.statvfs(tiny_disk).f_bavail > 0


def test_an_unreachable_s3_endpoint_is_named_with_what_to_do(
    cli, tmp_path: Path, make_pdf, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brokerflow.app.s3server import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", closed)
    monkeypatch.setenv("BROKERFLOW_S3_RETRY_SECONDS", "1")
    put = put_scan(cli, tmp_path, make_pdf)
    assert put.code == 5 and "Traceback" not in put.err
    assert f"the S3 endpoint {closed} does not answer" in put.err
    assert "BROKERFLOW_S3_ENDPOINT" in put.err
