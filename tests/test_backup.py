"""``brokerflow backup`` / ``restore``: a populated stack (documents, a void, decisions, a
client, a two-version input, an audit checkpoint) backed up and restored onto an empty one
(SQLite and moto S3; the directory store; PostgreSQL): verify is clean, the same bytes come
back, users log in, the audit chain verifies; a damaged, altered or foreign backup and a
non-empty target are refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import SQLModel, col, select

from brokerflow.app.backup import MANIFEST, SIGNATURE, manifest_hmac
from brokerflow.approvals.chain import FormCheck
from brokerflow.approvals.decisions import record_decision
from brokerflow.archive.serials import parse_serial
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import ArchiveEntry, SerialRecord, User, WebSession
from brokerflow.kernel.settings import load_settings
from tests.support.paths import ROSTER_CSV

ID_NUMBER = "11010519491231002X"
CRM_KEY = "crm/SZ01/2026-10/staff.csv"
CRM_VERSIONS = (b"month,cm_id\n2026-10,cm1\n", b"month,cm_id\n2026-10,cm2\n")


def _fail_render(serial: str) -> bytes:
    raise RuntimeError(f"template broke for {serial}")


@pytest.fixture
def populated(cli: Callable[..., Any], archive: Archive, user: Callable[[str], UserView],
              make_pdf: Callable[..., bytes], tmp_path: Path) -> dict[str, bytes]:
    """A stack with what a branch accumulates; serial -> the PDF archived under it."""
    documents = {}
    for n, subject in enumerate(("客户签字确认书", "开户资料扫描件", "营业部公告")):
        pdf = tmp_path / f"doc{n}.pdf"
        pdf.write_bytes(make_pdf(subject))
        put = cli("archive", "put", str(pdf), "--branch", "SZ01", "--type", "EXT",
                  "--subject", subject, "--cm", "cm1", user="cc1")
        assert put.code == 0, put.err
        serial = put.out.strip()  # the archived document: the PDF with the archive's signature
        documents[serial] = archive.store.get(parse_serial(serial).object_key)
        assert documents[serial].startswith(pdf.read_bytes())
    with pytest.raises(RuntimeError):  # a void serial, with its marker in the bucket
        archive.archive_rendered(DocumentSpec(branch="SZ01", doc_type="FIL", subject="报批",
                                              subject_key="filing:99"),
                                 _fail_render, actor=user("bk1"))
    with new_session(archive.engine) as session:
        for step, signer, role in (("office_receive", "bo1", "brokerage_office"),
                                   ("vp_instruction", "vp1", "vp")):
            record_decision(session, request_key="filing:1", revision=1, step=step,
                            signer_id=signer, check=FormCheck(True, role=role),
                            decision="approve", opinion="同意")
        session.add(WebSession(id="a" * 64, user_id="bm1"))
        session.commit()
    id_file = tmp_path / "client.id"
    id_file.write_text(ID_NUMBER + "\n", encoding="utf-8")
    client = cli("attribution", "preregister", "--cm", "cm1", "--client-name", "张三",
                 "--id-number-file", str(id_file), "--asset-size", "800000", "--no-start",
                 user="bk1")
    assert client.code == 0, client.err
    for body in CRM_VERSIONS:  # an input corrected once: two versions of one key
        archive.put_input(CRM_KEY, body, metadata={"uploaded-by": "ca1"},
                          content_type="text/csv")
    assert cli("audit", "verify", user="comp1").code == 0  # writes a checkpoint object
    return documents


def _target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str,
            database_url: str | None = None) -> None:
    """Point the settings at a new, empty database and bucket."""
    monkeypatch.setenv("BROKERFLOW_DATABASE_URL",
                       database_url or f"sqlite:///{tmp_path / (name + '.db')}")
    monkeypatch.setenv("BROKERFLOW_S3_BUCKET",
                       f"{os.environ['BROKERFLOW_S3_BUCKET']}-{name}"[:63])


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                for t in SQLModel.metadata.sorted_tables}


def _users(engine: Engine) -> list[tuple[Any, ...]]:
    with new_session(engine) as session:
        return [(u.user_id, u.name, u.secret_hash, u.updated_at) for u in
                session.exec(select(User).order_by(col(User.user_id)))]


def _assert_restored(cli: Callable[..., Any], documents: dict[str, bytes], source: Archive,
                     tmp_path: Path) -> Archive:
    """The restored stack works like the original; the target's Archive."""
    target = open_archive(load_settings())
    verified = cli("archive", "verify", user="comp1")
    assert verified.code == 0 and "OK" in verified.out, verified.out
    audited = cli("audit", "verify", user="comp1")
    assert audited.code == 0 and "intact" in audited.out, audited.out
    for serial, pdf in documents.items():
        out = tmp_path / f"{serial}.pdf"
        got = cli("archive", "get", serial, "--out", str(out), user="bm1")  # bm1 logs in
        assert got.code == 0, got.err
        assert out.read_bytes() == pdf
    assert _users(target.engine) == _users(source.engine)
    with new_session(target.engine) as session:
        assert session.exec(select(SerialRecord).where(SerialRecord.status == "void")).all()
        assert all(s.ended_at is not None for s in session.exec(select(WebSession)))
        entries = session.exec(select(ArchiveEntry)).all()
    stored = {(v.key, v.version_id) for v in target.store.versions()}
    assert {(e.object_key, e.version_id) for e in entries} <= stored  # the new versions
    assert [target.inputs.get(CRM_KEY, version_id=v.version_id) for v in
            reversed(list(target.inputs.versions(CRM_KEY)))] == list(CRM_VERSIONS)
    assert not list(target.store.versions("crm/"))  # inputs stay apart from the records
    assert target.inputs.stat(CRM_KEY).retention_mode == target.settings.retention_mode
    return target


def test_backup_and_restore_onto_an_empty_stack(
    cli: Callable[..., Any], archive: Archive, populated: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backup = tmp_path / "backup"
    made = cli("backup", str(backup), user="admin1")
    assert made.code == 0, made.err
    assert "keys are not in the backup" in made.out
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    files = [p for p in backup.rglob("*") if p.is_file()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert all(ID_NUMBER.encode() not in p.read_bytes() for p in files)  # hashed only
    manifest = json.loads((backup / MANIFEST).read_bytes())
    assert manifest["tables"][0]["name"] and manifest["schema_revision"]
    roster_users = len(ROSTER_CSV.read_text(encoding="utf-8").splitlines()) - 1
    assert {t["name"]: t["rows"] for t in manifest["tables"]}["user"] == roster_users
    with new_session(archive.engine) as session:
        old_versions = {e.serial: e.version_id for e in
                        session.exec(select(ArchiveEntry))}

    _target(monkeypatch, tmp_path, "restored")
    restored = cli("restore", str(backup))
    assert restored.code == 0, restored.err
    target = _assert_restored(cli, populated, archive, tmp_path)
    with new_session(target.engine) as session:
        new_versions = {e.serial: e.version_id for e in
                        session.exec(select(ArchiveEntry))}
    assert new_versions.keys() == old_versions.keys() == populated.keys()
    assert all(new_versions[s] != old_versions[s] for s in new_versions)

    again = cli("restore", str(backup))  # the target is not empty now
    assert again.code == 2 and "not empty" in again.err


def test_who_may_back_up_and_where(cli: Callable[..., Any], populated: dict[str, bytes],
                                   tmp_path: Path) -> None:
    denied = cli("backup", str(tmp_path / "b1"), user="bm1")
    assert denied.code == 3 and "admin" in denied.err
    assert cli("backup", str(tmp_path / "b1")).code == 2  # nobody named
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    refused = cli("backup", str(occupied), user="admin1")
    assert refused.code == 2 and str(occupied) in refused.err
    assert not (tmp_path / "b1").exists()
    missing = cli("restore", str(tmp_path / "nothing-here"))
    assert missing.code == 2 and "nothing-here" in missing.err


def _resign(backup: Path, table: str, edit: Callable[[list[str]], list[str]], *,
            with_key: bool) -> Path:
    """Edit a table's lines, fix its SHA-256 in the manifest and the manifest's SHA-256
    (what anyone can do); with the audit key also its HMAC (only the key's holder can)."""
    manifest = json.loads((backup / MANIFEST).read_bytes())
    entry = next(t for t in manifest["tables"] if t["name"] == table)
    path = backup / entry["file"]
    path.chmod(0o600)
    path.write_text("".join(edit(path.read_text(encoding="utf-8").splitlines(True))),
                    encoding="utf-8")
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    (backup / MANIFEST).write_bytes(body)
    signature = json.loads((backup / SIGNATURE).read_bytes())
    signature["sha256"] = hashlib.sha256(body).hexdigest()
    if with_key:
        signature["hmac_sha256"] = manifest_hmac(body)
    (backup / SIGNATURE).write_text(json.dumps(signature))
    return path


def test_damaged_altered_or_foreign_backups_are_refused_with_nothing_written(
    cli: Callable[..., Any], populated: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = tmp_path / "good"
    assert cli("backup", str(good), user="admin1").code == 0
    _target(monkeypatch, tmp_path, "target")

    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, tmp_path / name))

    blob = next(p for p in copy("blob").rglob("blobs/*/*"))
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    table = next(copy("table").glob("database/*-user.jsonl"))
    table.write_text(table.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    forged = copy("forged")  # an attacker's admin, checksums fixed but not the HMAC
    _resign(forged, "user", lambda lines: [lines[0].replace("系统管理员", "攻击者")] + lines[1:],
            with_key=False)
    cases = [(tmp_path / "blob", str(blob)), (tmp_path / "table", str(table)),
             (forged, str(forged / MANIFEST))]
    for backup, named in cases:
        refused = cli("restore", str(backup))
        assert refused.code == 2 and named in refused.err, refused.err
    monkeypatch.setenv("BROKERFLOW_AUDIT_KEY", "another-installation-audit-key-0123456")
    foreign = cli("restore", str(good))
    assert foreign.code == 2 and "HMAC" in foreign.err and MANIFEST in foreign.err
    target = open_archive(load_settings())
    assert sum(_rows(target.engine).values()) == 0
    assert list(target.store.versions()) == [] == list(target.inputs.versions())


def test_a_refused_database_step_rolls_back_and_a_rerun_continues(
    cli: Callable[..., Any], archive: Archive, populated: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = tmp_path / "good"
    assert cli("backup", str(good), user="admin1").code == 0
    broken = Path(shutil.copytree(good, tmp_path / "broken"))  # signed, but two admin1 rows
    table = _resign(broken, "user", lambda lines: lines + lines[:1], with_key=True)
    _target(monkeypatch, tmp_path, "target")
    refused = cli("restore", str(broken))
    assert refused.code == 2 and str(table) in refused.err, refused.err
    target = open_archive(load_settings())
    assert sum(_rows(target.engine).values()) == 0  # the one transaction rolled back
    objects = len(list(target.store.versions())) + len(list(target.inputs.versions()))
    assert objects > 0  # the store is write-once: the objects stay, and count as a start

    rerun = cli("restore", str(good))
    assert rerun.code == 0, rerun.err
    assert f"({objects} stored by an earlier attempt)" in rerun.out
    _assert_restored(cli, populated, archive, tmp_path)


def test_restore_into_the_directory_store(
    cli: Callable[..., Any], archive: Archive, populated: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backup = tmp_path / "backup"
    assert cli("backup", str(backup), user="admin1").code == 0
    _target(monkeypatch, tmp_path, "local")
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", "")  # no endpoint: the directory store
    monkeypatch.setenv("BROKERFLOW_STORE_DIR", str(tmp_path / "store"))
    restored = cli("restore", str(backup))
    assert restored.code == 0, restored.err
    target = _assert_restored(cli, populated, archive, tmp_path)
    assert target.store.kind == "directory"


@pytest.fixture
def another_postgres_database(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database besides the test's own (dropped after the test)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = f"bf_restore_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_restore_into_postgresql(
    cli: Callable[..., Any], archive: Archive, populated: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, another_postgres_database: str,
    make_pdf: Callable[..., bytes],
) -> None:
    """From the test's database (SQLite; PostgreSQL with BROKERFLOW_TEST_DATABASE=postgres)."""
    backup = tmp_path / "backup"
    assert cli("backup", str(backup), user="admin1").code == 0
    _target(monkeypatch, tmp_path, "pg", database_url=another_postgres_database)
    restored = cli("restore", str(backup))
    assert restored.code == 0, restored.err
    target = _assert_restored(cli, populated, archive, tmp_path)
    assert target.engine.dialect.name == "postgresql"
    # the sequences moved past the restored ids: new rows (an archive put) still insert
    pdf = tmp_path / "after.pdf"
    pdf.write_bytes(make_pdf("恢复后"))
    after = cli("archive", "put", str(pdf), "--branch", "SZ01", "--type", "EXT", "--subject",
                "恢复后", user="cc1")
    assert after.code == 0, after.err
    assert after.out.strip().endswith("000004")
