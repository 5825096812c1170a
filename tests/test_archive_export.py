"""``archive export``: a set an auditor checks without brokerflow (real S3 endpoint, SQLite)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from sqlmodel import col, select

from brokerflow.archive.export import checker_source
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import AccessLogEntry, ArchiveEntry, AuditEvent

YEAR = datetime.now(ZoneInfo("Asia/Shanghai")).year
PREFIX = f"SZ01-EXT-{YEAR}"


def _fail(serial: str) -> bytes:
    raise RuntimeError("renderer crashed")


def archive_some(archive: Archive, user: Callable[[str], UserView],
                 make_pdf: Callable[..., bytes]) -> dict[str, str]:
    """Two stored SZ01 documents with a void number between them, one GZ02 document, and an
    audit row naming the first serial (as a flow's rows name the documents they archive)."""
    first = archive.put(make_pdf("客户签字确认书扫描件"), DocumentSpec(
        branch="SZ01", doc_type="EXT", subject="客户签字确认书扫描件", subject_key="",
        cm_id="cm1"), actor=user("ca1")).serial
    with pytest.raises(RuntimeError):
        archive.archive_rendered(DocumentSpec(branch="SZ01", doc_type="EXT", subject="渲染失败",
                                              subject_key="ext:render-fails"),
                                 render=_fail, actor=user("ca1"))
    third = archive.put(make_pdf("=1+2 公式"), DocumentSpec(
        branch="SZ01", doc_type="EXT", subject="=1+2 公式", subject_key=""),
        actor=user("ca1")).serial
    other = archive.put(make_pdf("广州文件", branch="GZ02"), DocumentSpec(
        branch="GZ02", doc_type="EXT", subject="广州文件", subject_key=""),
        actor=user("gzbm")).serial
    with new_session(archive.engine) as session:
        note = append_audit(session, actor_id="ca1", action="ext-noted",
                            request_key="ext:note", details={"document": first})
        session.commit()
        note_id = note.id
    return {"first": first, "void": f"{PREFIX}-000002", "third": third, "other": other,
            "note": str(note_id)}


def check(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``check_export.py`` by a plain Python: isolated, no brokerflow on its path."""
    return subprocess.run([sys.executable, "-I", "check_export.py", *args], cwd=folder,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "")})


def test_export_writes_a_set_that_checks_without_brokerflow(
    cli, archive: Archive, user, make_pdf, tmp_path: Path
) -> None:
    made = archive_some(archive, user, make_pdf)
    out = tmp_path / "export"
    result = cli("archive", "export", "--serial-prefix", PREFIX, "--out", str(out),
                 user="comp1")
    assert result.code == 0, result.out + result.err
    assert "2 document(s)" in result.out and "1 void" in result.out

    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == sorted(["README.txt", "SHA256SUMS", "archive-root.pem", "audit-chain.jsonl",
                            "check_export.py", "manifest.csv", "manifest.json",
                            f"documents/{made['first']}.pdf", f"documents/{made['third']}.pdf"])
    assert not list(tmp_path.glob(".export.partial-*"))
    assert (out / "check_export.py").read_text(encoding="utf-8") == checker_source()
    assert "brokerflow" not in "".join(line for line in checker_source().splitlines()
                                       if line.startswith(("import", "from")))

    # SHA256SUMS in `sha256sum -c` form, every file but itself
    sums = {name: digest for digest, name in (
        line.split("  ", 1) for line in (out / "SHA256SUMS").read_text().splitlines())}
    assert sorted(sums) == sorted(set(names) - {"SHA256SUMS"})
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"],
                              cwd=out).returncode == 0

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["prefix"] == PREFIX and manifest["branch"] == "SZ01"
    assert manifest["exported_by"] == "comp1" and manifest["findings"] == []
    assert (manifest["counts"]["stored"], manifest["counts"]["void"]) == (2, 1)
    assert manifest["files"] == {k: v for k, v in sums.items() if k != "manifest.json"}
    rows = {r["serial"]: r for r in manifest["documents"]}
    assert list(rows) == [made["first"], made["void"], made["third"]]  # GZ02 not included
    stored = rows[made["first"]]
    pdf = (out / "documents" / f"{made['first']}.pdf").read_bytes()
    with new_session(archive.engine) as session:
        entry = session.get(ArchiveEntry, made["first"])
    assert entry is not None
    assert stored["status"] == "stored" and stored["type"] == "EXT" and stored["cm"] == "cm1"
    assert stored["sha256"] == stored["indexed_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert stored["size"] == len(pdf) and stored["version_id"] == entry.version_id
    assert stored["object_key"] == f"SZ01/EXT/{YEAR}/{made['first']}.pdf"
    assert stored["retention_mode"] == archive.settings.retention_mode
    assert int(stored["retain_until"][:4]) in (YEAR + 19, YEAR + 20)
    assert stored["legal_hold"] is False
    assert stored["signature"] == "valid"
    assert stored["audit_head"].split(":")[1] == str(stored["audit_head_id"]) != "0"
    void = rows[made["void"]]
    assert void["status"] == "void" and "render failed" in void["void_reason"]
    assert void["file"] == "" and void["sha256"] == ""
    sheet = list(csv.DictReader((out / "manifest.csv").read_text(encoding="utf-8-sig")
                                .splitlines()))
    assert [r["serial"] for r in sheet] == list(rows)
    assert sheet[2]["subject"] == "'=1+2 公式"  # never a formula in a spreadsheet

    # the audit slice: contiguous, from the lowest anchored head to the row naming a document
    lines = [json.loads(line) for line in
             (out / "audit-chain.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[0]["id"] == min(r["audit_head_id"] for r in rows.values() if r["file"])
    assert lines[-1]["id"] == int(made["note"]) and lines[-1]["details"] == {
        "document": made["first"]}
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:], strict=False))
    assert set(lines[0]) == {"id", "at", "actor", "action", "request", "details", "prev_hash",
                             "hash", "keyed"}

    # the export is evidence: access log per document, one audit row with the manifest's hash
    with new_session(archive.engine) as session:
        reads = list(session.exec(select(AccessLogEntry).where(AccessLogEntry.action == "export")))
        row = session.exec(select(AuditEvent).where(AuditEvent.action == "archive-exported")
                           .order_by(col(AuditEvent.id).desc())).first()
    assert sorted((r.user_id, r.target, r.allowed) for r in reads) == [
        ("comp1", made["first"], True), ("comp1", made["third"], True)]
    assert row is not None and row.actor_id == "comp1"
    details = json.loads(row.content)["details"]
    assert details["manifest_sha256"] == hashlib.sha256(
        (out / "manifest.json").read_bytes()).hexdigest()
    assert (details["prefix"], details["count"]) == (PREFIX, 2)

    # the standalone checker: clean; with the audit key every HMAC
    clean = check(out)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().endswith("OK")
    key_file = tmp_path / "audit.key"
    key_file.write_text(os.environ["BROKERFLOW_AUDIT_KEY"])
    keyed = check(out, "--audit-key-file", str(key_file))
    assert keyed.returncode == 0, keyed.stdout
    assert f"({len(lines)} hash(es) recomputed)" in keyed.stdout
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_text("not-the-key")
    assert check(out, "--audit-key-file", str(wrong_key)).returncode == 1

    # one byte of a PDF flipped: named
    flipped = tmp_path / "flipped"
    shutil.copytree(out, flipped)
    target = flipped / "documents" / f"{made['third']}.pdf"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    found = check(flipped)
    assert found.returncode == 1
    assert f"FINDING documents/{made['third']}.pdf" in found.stdout

    # one audit row's details edited: the checksums catch it, the key names the row
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    chain = (edited / "audit-chain.jsonl").read_text(encoding="utf-8").splitlines()
    changed = json.loads(chain[-1])
    changed["details"]["document"] = made["third"]
    chain[-1] = json.dumps(changed, ensure_ascii=False)
    (edited / "audit-chain.jsonl").write_text("\n".join(chain) + "\n", encoding="utf-8")
    broken = check(edited)
    assert broken.returncode == 1 and "FINDING audit-chain.jsonl" in broken.stdout
    named = check(edited, "--audit-key-file", str(key_file))
    assert f"audit row {changed['id']}: its content does not match" in named.stdout

    # the signatures verify with pyHanko against the set's root alone (as README.txt's
    # `pyhanko sign validate --trust archive-root.pem --trust-replace` does)
    roots = list(load_certs_from_pemder([str(out / "archive-root.pem")]))
    assert "pyhanko sign validate" in (out / "README.txt").read_text(encoding="utf-8")
    for serial in (made["first"], made["third"]):
        with (out / "documents" / f"{serial}.pdf").open("rb") as handle:
            signature = PdfFileReader(handle).embedded_regular_signatures[-1]
            status = validate_pdf_signature(signature, ValidationContext(
                trust_roots=roots, allow_fetching=False,
                moment=signature.self_reported_timestamp))
        assert status.bottom_line and status.coverage == SignatureCoverageLevel.ENTIRE_FILE


def test_a_mismatch_is_a_finding_in_the_manifest(
    cli, archive: Archive, user, make_pdf, tmp_path: Path
) -> None:
    made = archive_some(archive, user, make_pdf)
    with new_session(archive.engine) as session:  # the index now promises other bytes
        entry = session.get(ArchiveEntry, made["third"])
        assert entry is not None
        entry.sha256 = "0" * 64
        session.add(entry)
        session.commit()
    out = tmp_path / "export"
    result = cli("archive", "export", "--serial-prefix", f"SZ01-EXT-{YEAR}-00000", "--out",
                 str(out), user="admin1")
    assert result.code == 1
    assert f"FINDING {made['third']}: the stored bytes do not match" in result.out
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    row = next(r for r in manifest["documents"] if r["serial"] == made["third"])
    assert row["sha256"] != row["indexed_sha256"] and row["findings"]
    assert manifest["counts"]["findings"] == 2  # the bytes and the metadata's SHA-256
    checked = check(out)
    assert checked.returncode == 1
    assert f"RECORDED {made['third']}: the stored bytes do not match" in checked.stdout


def test_refusals(cli, archive: Archive, user, make_pdf, tmp_path: Path) -> None:
    archive_some(archive, user, make_pdf)
    out = tmp_path / "export"
    refused = cli("archive", "export", "--serial-prefix", PREFIX, "--out", str(out), user="cm1")
    assert refused.code == 3 and not out.exists()
    with new_session(archive.engine) as session:
        logged = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.action == "export", AccessLogEntry.allowed == False)).all()  # noqa: E712
    assert [r.user_id for r in logged] == ["cm1"]
    assert cli("archive", "export", "--serial-prefix", PREFIX, "--out", str(out),
               user="bm1").code == 3  # a branch manager is not an auditor
    out.mkdir()
    (out / "old.txt").write_text("x")
    full = cli("archive", "export", "--serial-prefix", PREFIX, "--out", str(out), user="comp1")
    assert full.code == 2 and "not empty" in full.err
    for bad in ("sz01", "SZ01-XYZ", "SZ01-EXT-26", f"SZ01-EXT-{YEAR}-0000001", "SZ01--EXT", ""):
        result = cli("archive", "export", "--serial-prefix", bad, "--out",
                     str(tmp_path / "new"), user="comp1")
        assert result.code == 2, bad
        assert "Traceback" not in result.err
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    ok = cli("archive", "export", "--serial-prefix", "SZ01", "--out", str(empty), user="comp1")
    assert ok.code == 0, ok.out + ok.err  # an empty directory is filled; SZ01 takes no GZ02
    manifest = json.loads((empty / "manifest.json").read_text(encoding="utf-8"))
    assert {r["serial"][:4] for r in manifest["documents"]} == {"SZ01"}
