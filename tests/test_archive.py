"""The archive end to end over the real S3 endpoint and a real SQLite file."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from brokerflow.app.s3server import MotoS3Server
from brokerflow.archive.index import SearchFilter
from brokerflow.archive.serials import parse_serial
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.archive.signing import check_signature, trust_roots
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import StorageError
from brokerflow.kernel.models import AccessLogEntry, ArchiveEntry, SerialCounter, SerialRecord
from tests.support.pdf import pdf_text

YEAR = datetime.now(ZoneInfo("Asia/Shanghai")).year


def put_file(cli, tmp_path: Path, make_pdf, *, subject: str = "客户签字确认书扫描件",
             user: str = "cc1", extra: tuple[str, ...] = (), name: str = "scan.pdf"):
    path = tmp_path / name
    path.write_bytes(make_pdf(subject))
    return cli("archive", "put", str(path), "--branch", "SZ01", "--type", "EXT",
               "--subject", subject, *extra, user=user)


def access_log(archive: Archive) -> list[AccessLogEntry]:
    with new_session(archive.engine) as session:
        return list(session.exec(select(AccessLogEntry).order_by(AccessLogEntry.id)))


def test_put_stores_locked_versioned_object_with_metadata_and_index_row(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    result = put_file(cli, tmp_path, make_pdf, extra=("--cm", "cm1"))
    assert result.code == 0, result.err
    serial = result.out.strip()
    assert serial == f"SZ01-EXT-{YEAR}-000001"
    key = f"SZ01/EXT/{YEAR}/{serial}.pdf"
    data = (tmp_path / "scan.pdf").read_bytes()
    info = archive.store.stat(key)
    assert info.metadata["serial"] == serial
    assert info.metadata["type"] == "EXT"
    assert info.metadata["subject"] == "客户签字确认书扫描件"
    assert archive.store.versioning_enabled()
    assert archive.store.lock_mode() == "COMPLIANCE"  # production settings (no BROKERFLOW_DEV)
    assert info.retention_mode == "COMPLIANCE"
    assert int(info.retain_until[:4]) in (YEAR + 19, YEAR + 20)
    with new_session(archive.engine) as session:
        entry = session.get(ArchiveEntry, serial)
    assert entry is not None
    assert entry.version_id == info.version_id and entry.cm_id == "cm1" and entry.team == "T1"
    stored = archive.store.get(key, version_id=entry.version_id)
    # the archive's signature is an incremental update: the uploaded bytes stay intact
    assert stored.startswith(data) and len(stored) > len(data)
    assert info.metadata["sha256"] == hashlib.sha256(stored).hexdigest() == entry.sha256
    check = check_signature(stored, trust_roots=trust_roots(archive.settings))
    assert check.ok and check.serial == serial, check.problem


def test_same_file_twice_returns_the_existing_serial(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    first = put_file(cli, tmp_path, make_pdf)
    second = put_file(cli, tmp_path, make_pdf)
    assert first.code == second.code == 0
    assert first.out == second.out
    assert "already archived" in second.err
    versions = list(archive.store.versions())
    assert len(versions) == 1


def test_rendered_documents_carry_their_own_serial(
    archive: Archive, user, renderer
) -> None:
    spec = DocumentSpec(branch="SZ01", doc_type="FIL", subject="2027年度营销方案",
                        subject_key="filing:1", revision=1)

    def render(serial: str) -> bytes:
        return renderer.render_pdf("FIL", {"branch": "SZ01", "subject": spec.subject,
                                           "serial": serial})

    result = archive.archive_rendered(spec, render, actor=user("bk1"))
    again = archive.archive_rendered(spec, render, actor=user("bk1"))
    revised = archive.archive_rendered(
        DocumentSpec(**{**spec.__dict__, "revision": 2}), render, actor=user("bk1"))
    assert result.created and not again.created and again.serial == result.serial
    assert parse_serial(revised.serial).number == 2
    _, data = archive.get(result.serial, actor=user("bm1"))
    assert result.serial in pdf_text(data, Path(archive.settings.home).parent)


def test_get_and_search_follow_the_access_rules(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    s1 = put_file(cli, tmp_path, make_pdf, subject="cm1 的材料", extra=("--cm", "cm1"),
                  name="a.pdf").out.strip()
    s3 = put_file(cli, tmp_path, make_pdf, subject="cm3 的材料", extra=("--cm", "cm3"),
                  name="b.pdf").out.strip()
    branch_doc = put_file(cli, tmp_path, make_pdf, subject="营业部材料", name="c.pdf").out.strip()

    def can_read(user: str, serial: str) -> bool:
        result = cli("archive", "get", serial, "--out", str(tmp_path / "out.pdf"), user=user)
        assert result.code in (0, 3), result.err
        return result.code == 0

    expected = {
        # user: (cm1's doc, cm3's doc, branch doc)
        "cm1": (True, False, False),   # a CM sees only documents about themselves
        "sm1": (True, False, False),   # stationed manager of team T1
        "sm2": (False, True, False),   # stationed manager of team T2
        "rm1": (True, True, False),    # regional manager over both stations
        "pd1": (True, True, False),    # project director at the top of the line
        "bm1": (True, True, True),     # branch management sees the branch
        "ca1": (True, True, True),
        "cc1": (False, False, False),  # counter clerk: not a team leader
        "gzbm": (False, False, False),  # another branch's manager
        "comp1": (True, True, True),   # head office sees all
    }
    for user, wanted in expected.items():
        got = tuple(can_read(user, s) for s in (s1, s3, branch_doc))
        assert got == wanted, user
    # what was archived, with the archive's signature appended (an incremental update)
    assert (tmp_path / "out.pdf").read_bytes().startswith((tmp_path / "c.pdf").read_bytes())
    denials = [e for e in access_log(archive) if not e.allowed and e.action == "read"]
    assert ("cm1", s3) in {(e.user_id, e.target) for e in denials}
    result = cli("archive", "search", "--format", "json", user="sm1")
    assert [row["serial"] for row in json.loads(result.out)] == [s1]
    result = cli("archive", "search", "--format", "json", user="bm1")
    assert [row["serial"] for row in json.loads(result.out)] == [s1, s3, branch_doc]


def test_search_by_serial_prefix_type_cm_and_month(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    serials = [
        put_file(cli, tmp_path, make_pdf, subject=f"材料{i}", name=f"{i}.pdf",
                 extra=("--cm", "cm1", "--month", f"2026-0{i}")).out.strip()
        for i in range(1, 4)
    ]

    def search(*args: str) -> list[str]:
        result = cli("archive", "search", *args, "--format", "json", user="bm1")
        assert result.code == 0, result.err
        return [row["serial"] for row in json.loads(result.out)]

    assert search("--serial", serials[1]) == [serials[1]]
    assert search("--serial", f"SZ01-EXT-{YEAR}-00000") == serials
    assert search("--serial", "SZ01-PAY") == []
    assert search("--type", "EXT", "--cm", "cm1") == serials
    assert search("--month", "2026-02") == [serials[1]]
    assert search("--status", "current", "--cm", "cm2") == []
    text = cli("archive", "search", "--serial", serials[0], user="bm1")
    assert serials[0] in text.out and "材料1" in text.out
    bad = cli("archive", "search", "--month", "2026-13", user="bm1")
    assert bad.code == 2 and "--month" in bad.err


def test_bad_input_exits_2_and_consumes_no_serial(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    pdf = tmp_path / "ok.pdf"
    pdf.write_bytes(make_pdf("x"))
    text = tmp_path / "notes.txt"
    text.write_text("not a pdf", encoding="utf-8")
    cases = [
        ([str(tmp_path / "missing.pdf"), "--branch", "SZ01", "--type", "EXT"], "no such file"),
        ([str(text), "--branch", "SZ01", "--type", "EXT"], "not a PDF"),
        ([str(pdf), "--branch", "SZ01", "--type", "ZZZ"], "unknown document type"),
        ([str(pdf), "--branch", "sz01", "--type", "EXT"], "branch code"),
        ([str(pdf), "--branch", "XX99", "--type", "EXT"], "nobody on the roster"),
        ([str(pdf), "--branch", "SZ01", "--type", "EXT", "--cm", "ghost"], "unknown CM"),
        ([str(pdf), "--branch", "SZ01", "--type", "EXT", "--cm", "gzcm"], "belongs to branch"),
        ([str(pdf), "--branch", "SZ01", "--type", "EXT", "--month", "26-1"], "YYYY-MM"),
    ]
    for args, message in cases:
        result = cli("archive", "put", *args, "--subject", "测试", user="cc1")
        assert result.code == 2, (args, result.err)
        assert message in result.err, (args, result.err)
    empty_subject = cli("archive", "put", str(pdf), "--branch", "SZ01", "--type", "EXT",
                        "--subject", "  ", user="cc1")
    assert empty_subject.code == 2 and "--subject" in empty_subject.err
    with new_session(archive.engine) as session:
        assert session.exec(select(SerialCounter)).first() is None
        assert session.exec(select(SerialRecord)).first() is None
    assert list(archive.store.versions()) == []


def test_wrong_secret_unknown_user_and_foreign_branch_exit_3_and_are_logged(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    serial = put_file(cli, tmp_path, make_pdf, extra=("--cm", "cm1")).out.strip()
    wrong = cli("archive", "get", serial, "--out", str(tmp_path / "o.pdf"), user="cm1",
                secret="guess")
    unknown = cli("archive", "search", user="mallory", secret="x")
    other_cm = cli("archive", "get", serial, "--out", str(tmp_path / "o.pdf"), user="cm2")
    foreign_put = put_file(cli, tmp_path, make_pdf, user="gzbm", name="g.pdf")
    assert (wrong.code, unknown.code, other_cm.code, foreign_put.code) == (3, 3, 3, 3)
    assert not (tmp_path / "o.pdf").exists()
    assert "pw-cm1" not in wrong.err
    refused = {(e.user_id, e.action) for e in access_log(archive) if not e.allowed}
    assert {("cm1", "authenticate"), ("mallory", "authenticate"), ("cm2", "read"),
            ("gzbm", "put")} <= refused
    no_user = cli("archive", "search")
    assert no_user.code == 2 and "--as" in no_user.err


def test_endpoint_stopped_mid_put_voids_the_serial_and_indexes_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, roster: None, user, renderer
) -> None:
    server = MotoS3Server()
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", server.endpoint)
    monkeypatch.setenv("BROKERFLOW_S3_TIMEOUT_SECONDS", "2")
    from brokerflow.kernel.settings import load_settings

    archive = open_archive(load_settings())
    spec = DocumentSpec(branch="SZ01", doc_type="PAY", subject="2026年10月薪酬",
                        subject_key="payroll:SZ01:2026-10", revision=1)

    def render_then_lose_the_endpoint(serial: str) -> bytes:
        pdf = renderer.render_pdf("PAY", {"branch": "SZ01", "subject": spec.subject,
                                          "serial": serial})
        server.stop()
        return pdf

    started = datetime.now()
    with pytest.raises(StorageError):
        archive.archive_rendered(spec, render_then_lose_the_endpoint, actor=user("ca1"))
    assert (datetime.now() - started).total_seconds() < 30  # bounded retries
    with new_session(archive.engine) as session:
        records = list(session.exec(select(SerialRecord)))
        assert session.exec(select(ArchiveEntry)).first() is None
    assert [(r.number, r.status) for r in records] == [(1, "void")]
    assert "store failed" in records[0].reason


def test_endpoint_down_cli_exits_nonzero(
    cli, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_pdf
) -> None:
    server = MotoS3Server()
    monkeypatch.setenv("BROKERFLOW_S3_ENDPOINT", server.endpoint)
    assert cli("roster", "load", str(Path(__file__).parent / "data" / "roster.csv")).code == 0
    server.stop()
    result = put_file(cli, tmp_path, make_pdf)
    assert result.code == 5 and "bucket" in result.err


def test_verify_reports_an_object_overwritten_behind_the_archives_back(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    serial = put_file(cli, tmp_path, make_pdf).out.strip()
    ok = cli("archive", "verify", user="comp1")
    assert ok.code == 0 and "checked 1 document(s): OK" in ok.out
    forged = make_pdf("伪造的内容")
    key = parse_serial(serial).object_key
    archive.store.client.put_object(
        archive.store.bucket, key, io.BytesIO(forged), len(forged),
        metadata={"x-amz-checksum-sha256": "", "x-amz-sdk-checksum-algorithm": "SHA256"},
    )
    report = cli("archive", "verify", user="comp1")
    assert report.code == 1
    assert f"{serial}: a newer, unindexed version" in report.out
    assert "different content" in report.out
    # the indexed version is still the archived one
    assert cli("archive", "get", serial, "--out", str(tmp_path / "o.pdf"), user="bm1").code == 0
    assert (tmp_path / "o.pdf").read_bytes().startswith((tmp_path / "scan.pdf").read_bytes())
    assert cli("archive", "verify", user="cm1").code == 3


def test_rebuild_index_from_the_bucket_alone(
    cli, archive: Archive, roster: None, tmp_path: Path, make_pdf
) -> None:
    serials = [put_file(cli, tmp_path, make_pdf, subject=f"文件{i}", name=f"{i}.pdf",
                        extra=("--cm", "cm1")).out.strip() for i in range(3)]
    with new_session(archive.engine) as session:
        before = {e.serial: e.model_dump() for e in session.exec(select(ArchiveEntry))}
        for table in (ArchiveEntry, SerialRecord, SerialCounter):
            for row in session.exec(select(table)):
                session.delete(row)
        session.commit()
    assert cli("archive", "search", "--format", "json", user="bm1").out.strip() == "[]"
    result = cli("archive", "rebuild-index", user="admin1")
    assert result.code == 0, result.err
    assert "indexed 3 document(s)" in result.out
    with new_session(archive.engine) as session:
        after = {e.serial: e.model_dump() for e in session.exec(select(ArchiveEntry))}
    assert sorted(after) == serials
    for serial in serials:
        for field in ("subject", "sha256", "cm_id", "team", "month", "version_id", "size",
                      "created_by", "subject_key"):
            assert after[serial][field] == before[serial][field], field
    assert cli("archive", "verify", user="comp1").code == 0
    nxt = put_file(cli, tmp_path, make_pdf, subject="之后的文件", name="n.pdf")
    assert nxt.out.strip() == f"SZ01-EXT-{YEAR}-000004"


def test_search_within_the_archive_api(archive: Archive, user, make_pdf) -> None:
    spec = DocumentSpec(branch="SZ01", doc_type="EXT", subject="扫描件", subject_key="",
                        cm_id="cm2")
    result = archive.put(make_pdf("扫描件"), spec, actor=user("cc1"))
    rows = archive.search(SearchFilter(cm_id="cm2"), actor=user("sm1"))
    assert [r.serial for r in rows] == [result.serial]
    assert archive.search(SearchFilter(cm_id="cm2"), actor=user("cm1")) == []


def test_the_archive_works_on_postgresql(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch, cli, tmp_path: Path, make_pdf
) -> None:
    monkeypatch.setenv("BROKERFLOW_DATABASE_URL", postgres_database)
    assert cli("roster", "load", str(Path(__file__).parent / "data" / "roster.csv")).code == 0
    first = put_file(cli, tmp_path, make_pdf, extra=("--cm", "cm1"))
    again = put_file(cli, tmp_path, make_pdf, extra=("--cm", "cm1"))
    assert first.code == 0 and first.out == again.out == f"SZ01-EXT-{YEAR}-000001\n"
    serial = first.out.strip()
    assert cli("archive", "get", serial, "--out", str(tmp_path / "o.pdf"), user="cm1").code == 0
    assert cli("archive", "get", serial, "--out", str(tmp_path / "o.pdf"), user="cm2").code == 3
    assert cli("archive", "rebuild-index", user="admin1").code == 0
    assert cli("archive", "verify", user="comp1").code == 0


def test_an_interrupted_put_is_settled_after_its_lease(
    archive: Archive, user, make_pdf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that died after allocating (or after storing) leaves no hole and no block."""
    spec_lost = DocumentSpec(branch="SZ01", doc_type="EXT", subject="丢失", subject_key="k:lost")
    spec_stored = DocumentSpec(branch="SZ01", doc_type="EXT", subject="已存", subject_key="k:kept")
    lost = archive.reserve(spec_lost, actor=user("cc1"))
    kept = archive.reserve(spec_stored, actor=user("cc1"))
    assert not isinstance(lost, str) and not isinstance(kept, str)
    archive._store_object(kept, make_pdf("已存"))  # ... and the process died before indexing
    with pytest.raises(StorageError, match="being archived"):
        archive.put(make_pdf("丢失"), spec_lost, actor=user("cc1"))
    assert any("neither stored nor void" in p for p in archive.verify().problems)

    archive.settings.reservation_lease_seconds = 0
    retried = archive.put(make_pdf("丢失"), spec_lost, actor=user("cc1"))
    assert retried.created and parse_serial(retried.serial).number == 3
    recovered = archive.put(make_pdf("已存"), spec_stored, actor=user("cc1"))
    assert not recovered.created and recovered.serial == str(kept.serial)
    with new_session(archive.engine) as session:
        statuses = {r.number: r.status for r in session.exec(select(SerialRecord))}
    assert statuses == {1: "void", 2: "stored", 3: "stored"}
    assert archive.verify().ok


def test_search_limit_counts_visible_documents_not_rows_read(
    archive: Archive, user, make_pdf
) -> None:
    """A CM's document after more of others' rows than the limit is still found."""
    pdf = make_pdf("检索分页")
    owners = ["cm3", "cm3", "cm2", "cm3", "cm1", "cm2", "cm1"]
    serials = [archive.put(pdf, DocumentSpec(branch="SZ01", doc_type="EXT", subject=f"{n} {cm}",
                                             subject_key=f"page-test:{n}", cm_id=cm),
                           actor=user("cc1")).serial
               for n, cm in enumerate(owners)]
    by_owner = dict(zip(serials, owners, strict=True))

    def found(user_id: str, limit: int) -> list[str]:
        return [e.serial for e in archive.search(SearchFilter(serial="SZ01-EXT", limit=limit),
                                                 actor=user(user_id))]

    # cm1's documents are the 5th and 7th rows: a limit of 1 or 2 must still reach them
    assert found("cm1", 1) == [s for s in serials if by_owner[s] == "cm1"][:1]
    assert found("cm1", 2) == [s for s in serials if by_owner[s] == "cm1"]
    # sm1 leads cm1 and cm2 (team T1): the first three of theirs, past cm3's rows
    assert found("sm1", 3) == [s for s in serials if by_owner[s] in ("cm1", "cm2")][:3]
    # branch management reads all: a limit is simply the first rows
    assert found("bm1", 4) == serials[:4]
    # every one of these is readable by its searcher, one by one
    for serial in found("sm1", 10):
        archive.get(serial, actor=user("sm1"))
