"""``archive export``: archived documents as a set an auditor can check without brokerflow.

The set, written into a temporary sibling of DIR and renamed into place at the end:
``documents/<serial>.pdf`` (every stored document of the serial prefix, re-hashed against the
index), ``manifest.json`` and ``manifest.csv`` (every serial of the range, stored or void, with
what the store says of retention, legal hold and the anchored audit head), ``audit-chain.jsonl``
(the contiguous audit-chain slice covering the documents), ``archive-root.pem``,
``check_export.py`` (``export_check``: standard library only), ``README.txt`` and
``SHA256SUMS``.  A problem on the way is a finding -- recorded in the manifest and the report
-- never a reason to stop.  The export is logged per document and by one audit row.
docs/auditor-export.md.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from brokerflow.archive import index
from brokerflow.archive.anchors import parse_head_label
from brokerflow.archive.signing import check_signature, trust_roots
from brokerflow.kernel.audit import append_audit, audit_key, chain_hash
from brokerflow.kernel.db import new_session, read_session
from brokerflow.kernel.errors import BadInput, BrokerflowError, NotFound
from brokerflow.kernel.identity import UserView, check_branch, may_audit
from brokerflow.kernel.models import (
    ArchiveEntry,
    AuditEvent,
    AuditHead,
    SerialCounter,
    SerialRecord,
)
from brokerflow.kernel.sheets import sheet_text
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES

if TYPE_CHECKING:
    from brokerflow.archive.service import Archive

PREFIX_PATTERN = re.compile(r"([A-Z][A-Z0-9]{1,7})(?:-([A-Z]{3})(?:-(\d{4})(?:-(\d{1,6}))?)?)?")
COLUMN = "--serial-prefix"
CSV_COLUMNS = ("serial", "status", "document_status", "type", "subject", "subject_key", "cm",
               "month", "created_at", "created_by", "file", "sha256", "indexed_sha256", "size",
               "object_key", "version_id", "retention_mode", "retain_until", "legal_hold",
               "signature", "signer", "audit_head", "void_reason", "findings")
CHUNK = 200  # subject keys per audit query


@dataclass
class ExportReport:
    """What ``export_documents`` wrote and found."""

    out: Path
    prefix: str
    stored: int = 0
    void: int = 0
    exported: int = 0  # PDF files in the set
    audit_rows: int = 0
    manifest_sha256: str = ""
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def match_prefix(text: str) -> str:
    """What serials of the prefix ``BRANCH[-TYPE[-YYYY[-NNNNNN]]]`` start with (a whole part
    gets its ``-``, so ``SZ01`` never takes in ``SZ010-…``); BadInput when it is not one."""
    match = PREFIX_PATTERN.fullmatch(text.strip())
    if match is None:
        raise BadInput(f"{text!r} is not a serial prefix like SZ01-PAY-2026 "
                       "(BRANCH[-TYPE[-YYYY[-NNNNNN]]])", column=COLUMN)
    branch, doc_type, _, number = match.groups()
    check_branch(branch, column=COLUMN)
    if doc_type is not None and doc_type not in DOCUMENT_TYPES:
        raise BadInput(f"unknown document type {doc_type!r}; one of "
                       f"{', '.join(DOCUMENT_TYPES)}", column=COLUMN)
    return match.group(0) if number is not None else match.group(0) + "-"


def check_out(out: Path) -> None:
    """``out`` must be a new or empty directory in an existing one; BadInput else."""
    try:
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            raise BadInput(f"{out} exists and is not a directory", column="--out")
        if out.is_dir() and any(out.iterdir()):
            raise BadInput(f"{out} is not empty: give a new or empty directory", column="--out")
        if not out.absolute().parent.is_dir():
            raise BadInput(f"{out.absolute().parent} does not exist", column="--out")
    except OSError as exc:
        raise BadInput(f"cannot use {out}: {exc.strerror or exc}", column="--out") from None


def checker_source() -> str:
    """The text of ``check_export.py`` (this package's ``export_check`` module)."""
    return (importlib.resources.files("brokerflow.archive") / "export_check.py").read_text(
        encoding="utf-8")


def export_documents(archive: Archive, *, prefix: str, out: Path, actor: UserView,
                     progress: Callable[[int], None] | None = None) -> ExportReport:
    """Write the auditor's set of every serial under ``prefix`` into ``out`` (new or empty);
    head office or an admin only (a refusal is logged)."""
    starts = match_prefix(prefix)
    check_out(out)
    refusal = may_audit(actor)
    if refusal is not None:
        raise archive.deny(actor, "export", prefix.strip(), refusal)
    out = out.absolute()
    report = ExportReport(out=out, prefix=starts.rstrip("-"))
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise BadInput(f"cannot write beside {out}: {exc.strerror or exc}",
                       column="--out") from None
    try:
        files = _write_set(archive, work, report=report, starts=starts, actor=actor,
                           progress=progress)
        report.manifest_sha256 = files["manifest.json"]
        if out.exists():
            out.rmdir()  # empty (checked); a file that appeared since is refused by rename
        os.rename(work, out)
    except OSError as exc:
        raise BadInput(f"cannot write the export to {out}: {exc.strerror or exc}",
                       column="--out") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=actor.user_id, action="archive-exported",
                     request_key=f"archive-export:{report.prefix}"[:64],
                     details={"prefix": report.prefix, "count": report.exported,
                              "stored": report.stored, "void": report.void,
                              "findings": len(report.findings),
                              "manifest_sha256": report.manifest_sha256,
                              "audit_rows": report.audit_rows, "out": out.name})
        session.commit()
    return report


def _write_set(archive: Archive, work: Path, *, report: ExportReport, starts: str,
               actor: UserView, progress: Callable[[int], None] | None) -> dict[str, str]:
    """Every file of the set into ``work``; SHA-256 of each by name."""
    files: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        path = work / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()

    try:
        roots = trust_roots(archive.settings)
    except BrokerflowError as exc:
        roots, no_roots = [], f"not checked: {exc}"
        report.findings.append(f"no trust anchor for the signatures: {exc}")
    else:
        no_roots = ""
        write("archive-root.pem", b"".join(roots))
    rows = _serial_rows(archive, starts=starts, report=report)
    for done, row in enumerate(rows, start=1):
        if row["status"] == "stored":
            _export_document(archive, row, write=write, roots=roots, no_roots=no_roots,
                             actor=actor, prefix=report.prefix)
        report.findings += [f"{row['serial']}: {f}" for f in row["findings"]]
        if progress is not None:
            progress(done)
    report.stored = sum(1 for r in rows if r["status"] == "stored")
    report.void = sum(1 for r in rows if r["status"] == "void")
    report.exported = sum(1 for r in rows if r["file"])
    with (work / "audit-chain.jsonl").open("wb") as handle:
        digest, audit = _write_audit_slice(archive, rows, handle=handle, report=report,
                                           starts=starts)
    files["audit-chain.jsonl"] = digest
    write("check_export.py", checker_source().encode("utf-8"))
    write("README.txt", README.encode("utf-8"))
    write("manifest.csv", _csv(rows).encode("utf-8-sig"))
    manifest = {
        "format": "brokerflow-archive-export/1", "prefix": report.prefix,
        "branch": report.prefix.split("-")[0], "exported_at": archive.clock().isoformat(),
        "exported_by": actor.user_id, "brokerflow_version": _version(),
        "counts": {"serials": len(rows), "stored": report.stored, "void": report.void,
                   "files": report.exported, "audit_rows": report.audit_rows,
                   "findings": len(report.findings)},
        "audit_slice": audit, "files": dict(sorted(files.items())),
        "findings": report.findings, "documents": rows}
    write("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    (work / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return files


def _serial_rows(archive: Archive, *, starts: str, report: ExportReport) -> list[dict[str, Any]]:
    """A manifest row per serial of the range, from the serial records and the index; every
    number up to each series' counter accounted for (a missing one is a finding)."""
    with read_session(archive.engine) as session:
        records = {r.serial: r for r in session.exec(select(SerialRecord).where(
            col(SerialRecord.serial).startswith(starts, autoescape=True)))
            if r.serial.startswith(starts)}
        entries = {e.serial: e for e in session.exec(select(ArchiveEntry).where(
            col(ArchiveEntry.serial).startswith(starts, autoescape=True)))
            if e.serial.startswith(starts)}
        counters = list(session.exec(select(SerialCounter).where(
            SerialCounter.branch == starts.split("-")[0])))
    rows = []
    for serial in sorted(set(records) | set(entries)):
        record, entry = records.get(serial), entries.get(serial)
        status = "stored" if entry is not None else (record.status if record else "")
        row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "") | {
            "serial": serial, "status": status, "legal_hold": False, "size": 0,
            "audit_head_id": 0, "audit_head_hash": "", "findings": []}
        if entry is not None:
            row |= {"document_status": entry.status, "type": entry.doc_type,
                    "subject": entry.subject, "cm": entry.cm_id or "", "month": entry.month,
                    "created_at": entry.created_at.isoformat(), "created_by": entry.created_by,
                    "indexed_sha256": entry.sha256, "object_key": entry.object_key,
                    "version_id": entry.version_id, "subject_key": entry.subject_key}
        if record is None:
            row["findings"].append("indexed, but the serial has no record")
        elif record.status == "void":
            row |= {"type": record.doc_type, "void_reason": record.reason}
            if entry is None:
                row["subject_key"] = record.subject_key
            else:
                row["findings"].append(f"indexed, but its serial is void ({record.reason})")
        elif entry is None:
            row |= {"type": record.doc_type, "subject_key": record.subject_key}
            row["findings"].append(f"{record.status}: neither stored nor void")
        rows.append(row)
    for counter in counters:
        series = f"{counter.branch}-{counter.doc_type}-{counter.year:04d}-"
        if not (series.startswith(starts) or starts.startswith(series)):
            continue
        missing = [f"{series}{n:06d}" for n in range(1, counter.last_number + 1)
                   if f"{series}{n:06d}".startswith(starts)
                   and f"{series}{n:06d}" not in records]
        if missing:
            report.findings.append(f"{series.rstrip('-')}: {len(missing)} number(s) neither "
                                   f"stored nor void, e.g. {', '.join(missing[:5])}")
    return rows


def _export_document(archive: Archive, row: dict[str, Any], *, write: Callable[[str, bytes], None],
                     roots: list[bytes], no_roots: str, actor: UserView, prefix: str) -> None:
    """Read one stored document through the store into the set, its manifest row filled."""
    serial, findings = row["serial"], row["findings"]
    try:
        data = archive.store.get(row["object_key"], version_id=row["version_id"] or None)
        info = archive.store.stat(row["object_key"], version_id=row["version_id"] or None)
    except NotFound as exc:
        findings.append(f"not exported: {exc}")
        _log(archive, actor, serial, allowed=False, reason=f"export {prefix}: object missing")
        return
    name = f"documents/{serial}.pdf"
    write(name, data)
    digest = hashlib.sha256(data).hexdigest()
    row |= {"file": name, "sha256": digest, "size": len(data),
            "retention_mode": info.retention_mode, "retain_until": info.retain_until,
            "legal_hold": info.legal_hold, "version_id": info.version_id or row["version_id"]}
    if digest != row["indexed_sha256"]:
        findings.append("the stored bytes do not match the SHA-256 in the index")
    if info.metadata.get("sha256", digest) != row["indexed_sha256"]:
        findings.append("the object's metadata names another SHA-256 than the index")
    head = parse_head_label(info.metadata.get("audit-head", ""), source=serial)
    if head is None:
        findings.append("the object's metadata carries no audit head")
    else:
        row |= {"audit_head": info.metadata["audit-head"], "audit_head_id": head["last_id"],
                "audit_head_hash": head["last_hash"]}
    if no_roots:
        row["signature"] = no_roots
    else:
        check = check_signature(data, trust_roots=roots)
        row |= {"signature": "valid" if check.ok else check.problem, "signer": check.signer}
        if not check.ok:
            findings.append(f"signature: {check.problem}")
        elif check.serial and check.serial != serial:
            findings.append(f"the signature names serial {check.serial}")
    _log(archive, actor, serial, allowed=True, reason=f"auditor export {prefix}")


def _log(archive: Archive, actor: UserView, serial: str, *, allowed: bool, reason: str) -> None:
    with new_session(archive.engine) as session:
        index.log_access(session, user_id=actor.user_id, action="export", target=serial,
                         allowed=allowed, reason=reason)
        session.commit()


def _concerning(session: Session, rows: list[dict[str, Any]], starts: str) -> tuple[int, int]:
    """(first, last) id of the audit rows about the exported serials: the row's request key
    is a document's subject key or the request it belongs to (``filing:7`` of
    ``filing:7:opinions``), or its request key or details name one of the range's serials or
    a document's subject key; (0, 0) when there is none."""
    keys = sorted({r["subject_key"] for r in rows if r["subject_key"]})
    requests = sorted(keys + [k.rsplit(":", n)[0] for k in keys for n in range(1, k.count(":"))])
    content = col(AuditEvent.content)
    conditions = [content.contains(starts, autoescape=True)]
    conditions += [col(AuditEvent.request_key).in_(requests[i:i + CHUNK])
                   for i in range(0, len(requests), CHUNK)]
    conditions += [content.contains(json.dumps(k, ensure_ascii=False), autoescape=True)
                   for k in keys]
    first, last = 0, 0
    for i in range(0, len(conditions), CHUNK):
        low, high = session.exec(select(func.min(AuditEvent.id), func.max(AuditEvent.id))
                                 .where(or_(*conditions[i:i + CHUNK]))).one()
        if low is not None and high is not None:
            first, last = min(first or low, low), max(last, high)
    return first, last


def _write_audit_slice(archive: Archive, rows: list[dict[str, Any]], *,
                       handle: io.BufferedWriter, report: ExportReport, starts: str
                       ) -> tuple[str, dict[str, Any]]:
    """The contiguous audit rows from the first concerning the documents (or the lowest head
    they anchor) to the last (or the highest head), one JSON line each with what recomputes
    its hash; (SHA-256 of the file, the manifest's ``audit_slice``).  Breaks are findings."""
    digest, key, prev = hashlib.sha256(), audit_key(), None
    hashes: dict[int, str] = {}
    anchors = [r["audit_head_id"] for r in rows if r["audit_head_id"]]
    with read_session(archive.engine) as session:
        head = session.get(AuditHead, 1)
        legacy = head.legacy_last_id if head is not None else 0
        first, last = _concerning(session, rows, starts)
        bounds = [i for i in (first, last, *anchors) if i]
        first, last = (min(bounds), max(bounds)) if bounds else (0, -1)
        for event in session.exec(select(AuditEvent).where(
                col(AuditEvent.id) >= first, col(AuditEvent.id) <= last)
                .order_by(col(AuditEvent.id)).execution_options(yield_per=1000)):
            assert event.id is not None
            fields = _fields(event)
            if fields is None or (fields["actor"], fields["action"], fields["request"]) != (
                    event.actor_id, event.action, event.request_key):
                report.findings.append(f"audit row {event.id}: its columns and hashed content "
                                       "differ")
            if prev is not None and event.prev_hash != prev:
                report.findings.append(f"audit row {event.id}: its prev_hash is not the hash "
                                       "of the row before it")
            if chain_hash(event.prev_hash, event.content,
                          key=None if event.id <= legacy else key) != event.hash:
                report.findings.append(f"audit row {event.id}: content does not match its hash")
            line = (fields or {"at": event.at.isoformat(), "actor": event.actor_id,
                               "action": event.action, "request": event.request_key,
                               "details": {}}) | {"id": event.id, "hash": event.hash,
                                                  "prev_hash": event.prev_hash,
                                                  "keyed": event.id > legacy}
            text = (json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
            handle.write(text)
            digest.update(text)
            hashes[event.id], prev = event.hash, event.hash
            report.audit_rows += 1
    for row in rows:
        if row["audit_head_id"] and hashes.get(row["audit_head_id"]) != row["audit_head_hash"]:
            report.findings.append(f"{row['serial']}: the audit head it anchors (row "
                                   f"{row['audit_head_id']}) is not in the chain as recorded")
    return digest.hexdigest(), {"first_id": first if bounds else 0, "last_id": max(last, 0),
                                "rows": report.audit_rows, "legacy_last_id": legacy,
                                "rule": SLICE_RULE}


def _fields(event: AuditEvent) -> dict[str, Any] | None:
    """The fields whose canonical JSON is exactly the row's hashed content; None if none are."""
    try:
        data = json.loads(event.content)
        fields = {k: data[k] for k in ("at", "actor", "action", "request", "details")}
    except (ValueError, KeyError, TypeError):
        return None
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return fields if text == event.content else None


def _csv(rows: list[dict[str, Any]]) -> str:
    """The manifest as a sheet; no text cell is ever evaluated as a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = [("; ".join(row[c]) if c == "findings" else row[c]) for c in CSV_COLUMNS]
        writer.writerow([sheet_text(c) for c in cells])
    return buffer.getvalue()


def _version() -> str:
    try:
        return importlib.metadata.version("brokerflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


SLICE_RULE = ("contiguous rows from the first row about an exported serial (its serial or "
              "subject key in the row's request key or details, or the row's request key the "
              "one its subject key belongs to) or the lowest audit head a document anchors, "
              "to the last such row or the highest anchored head, whichever is later")

README = """\
brokerflow archive export: how to check it / 档案导出：如何核验

documents/<serial>.pdf  the stored documents of the serial range / 该范围内已存档的文件
manifest.json, .csv     every serial, stored or void (with reason): SHA-256, retention, legal hold,
                        signature, anchored audit head / 每个流水号（已存或作废及原因）及其校验值、
                        保留期限、法律保全、签名状态、锚定的审计链头
audit-chain.jsonl       the contiguous audit-chain slice covering them / 覆盖它们的连续审计链片段
archive-root.pem        the trust anchor of the PDF signatures / PDF 签名的信任锚（档案根证书）
SHA256SUMS              checksums of every file (sha256sum -c SHA256SUMS) / 全部文件的校验和

1. Files, numbers, audit chain (Python 3 only) / 文件、编号、审计链（只需 Python 3）:
     python3 check_export.py [--audit-key-file KEYFILE]
   With the company's audit key (BROKERFLOW_AUDIT_KEY) in KEYFILE every HMAC is recomputed.
   Exit 0: no finding; 1: findings, printed; 2: the set cannot be read.
   有公司的审计密钥时复核每行 HMAC。退出码 0：无问题；1：有问题（逐条列出）；2：无法读取。

2. PDF signatures (pyHanko) / PDF 签名（pyHanko）:
     pip install pyhanko-cli
     pyhanko sign validate --pretty-print --validation-time claimed \\
         --trust archive-root.pem --trust-replace documents/<serial>.pdf
   "The signature is judged VALID" and "covers the entire file" = intact and from the archive.
   The signatures carry no trusted time: --validation-time claimed judges each at the signing
   time it states (needed once the signing certificate has expired).
   结果为 VALID 且签名覆盖全文，即文件完整、由档案签署。签名不含可信时间戳，
   --validation-time claimed 按其声明的签署时间判断（签名证书过期后必需）。
"""
