"""Integrity of the archive: ``verify`` re-hashes what the index promises and accounts for
every serial and every object; ``rebuild_index`` recreates the index from the bucket alone."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlmodel import select

from brokerflow.archive import holds, signing
from brokerflow.archive.layout import entry_from_metadata, is_document_key, void_marker_serial
from brokerflow.archive.serials import Serial, parse_serial
from brokerflow.archive.store import ObjectInfo, ObjectVersion
from brokerflow.archive.stores import DocumentStore
from brokerflow.kernel.calendar import add_years
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BrokerflowError, NotFound
from brokerflow.kernel.models import ArchiveEntry, SerialCounter, SerialRecord
from brokerflow.kernel.vocabulary import SerialStatus

if TYPE_CHECKING:
    from brokerflow.archive.service import Archive

#: Key prefixes of inputs (CRM exports); in the record series they are a finding.
INPUT_PREFIXES = ("crm/",)


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    markers_written: int = 0  # void markers the bucket lacked (the store was down at voiding)
    signatures_checked: int = 0  # with ``signatures``: PDFs whose PAdES signature was validated
    inputs_checked: int = 0  # input versions (CRM exports) re-hashed and retention-checked

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RebuildReport:
    indexed: int = 0
    inputs: int = 0  # input versions found in the inputs store (they have no index rows)
    voids_kept: int = 0  # from the bucket's void markers and the database's void records
    voided_gaps: int = 0
    voided_duplicates: int = 0  # objects under an earlier serial of the same document
    skipped: list[str] = field(default_factory=list)


def retention_problem(info: ObjectInfo, *, mode: str, at_least_until: datetime | None
                      ) -> str | None:
    """Why an object's own retention falls short (None when it does not): missing, weaker
    than ``mode`` (GOVERNANCE where COMPLIANCE is required) or ending before
    ``at_least_until`` (archive time plus the policy's years).  Pure."""
    until = info.retained_until()
    if not info.retention_mode or until is None:
        return "has no retention of its own"
    if info.retention_mode != mode and info.retention_mode != "COMPLIANCE":
        return f"is retained in {info.retention_mode} mode, not {mode}"
    if at_least_until is not None and until < at_least_until - timedelta(seconds=1):
        return (f"is retained only until {until:%Y-%m-%d}, the policy asks for "
                f"{at_least_until:%Y-%m-%d}")
    return None


def verify(archive: Archive, *, progress: Callable[[int], None] | None = None,
           signatures: bool = False) -> VerifyReport:
    """Re-hash every indexed object and account for every serial and every object.

    Reported: a missing or altered object, an object whose own retention is missing, weaker
    than the configured mode or shorter than the policy, more than one version under one
    serial (a late duplicate upload or an overwrite), an object the index does not know
    (with what the serial's record says: voided before its upload arrived, or still
    reserved), numbers neither stored nor void, inputs kept in the record series, and (with
    ``signatures``) every PDF whose PAdES signature does not validate offline against this
    installation's archive root.
    """
    report = VerifyReport()
    roots = signing.trust_roots(archive.settings) if signatures else []
    with new_session(archive.engine) as session:
        entries = list(session.exec(select(ArchiveEntry).order_by(ArchiveEntry.serial)))
        records = {r.serial: r for r in session.exec(select(SerialRecord))}
        counters = list(session.exec(select(SerialCounter)))
    versions: dict[str, list[ObjectVersion]] = defaultdict(list)
    markers: set[str] = set()
    for version in archive.store.versions():
        if is_document_key(version.key):
            versions[version.key].append(version)
        elif (voided := void_marker_serial(version.key)) is not None:
            markers.add(voided)
            if version.is_latest:
                _check_retention(archive, version.key, version.version_id, None, report)
        elif version.key.startswith(INPUT_PREFIXES) and version.is_latest:
            report.problems.append(f"{version.key}: an input kept in the record series "
                                   f"(inputs belong in {archive.inputs.location()})")
    for void in records.values():  # a void the store was down for gets its marker now
        if void.status == SerialStatus.VOID and void.serial not in markers:
            if archive.store_void_marker(void.serial, void.reason):
                report.markers_written += 1
            else:
                report.problems.append(f"{void.serial}: void, but its marker could not be "
                                       "written to the bucket")
    indexed_keys = {e.object_key for e in entries}
    for entry in entries:
        report.checked += 1
        data = _verify_entry(archive, entry, versions.get(entry.object_key, []), report)
        years = archive.settings.retention_years
        _check_retention(archive, entry.object_key, entry.version_id,
                         add_years(entry.created_at.astimezone(UTC), years), report,
                         name=entry.serial)
        if signatures and data is not None:
            _check_signature(entry, data, roots, report)
        if progress is not None:
            progress(report.checked)
    for key in sorted(set(versions) - indexed_keys):
        serial = key.rsplit("/", 1)[-1].removesuffix(".pdf")
        record = records.get(serial)
        if record is not None and record.status == SerialStatus.VOID:
            report.problems.append(f"{key}: object arrived after its serial was voided "
                                   f"({record.reason})")
        elif record is not None:
            report.problems.append(f"{key}: object stored but not indexed; the serial is "
                                   "still reserved (an interrupted archive)")
        else:
            report.problems.append(f"{key}: object in the bucket but not in the index")
    numbers: dict[tuple[str, str, int], set[int]] = defaultdict(set)
    for record in records.values():
        numbers[(record.branch, record.doc_type, record.year)].add(record.number)
        if record.status == SerialStatus.RESERVED:
            report.problems.append(f"{record.serial}: allocated but neither stored nor void")
    for counter in counters:
        have = numbers[(counter.branch, counter.doc_type, counter.year)]
        missing = set(range(1, counter.last_number + 1)) - have
        if missing:
            report.problems.append(
                f"{counter.branch}-{counter.doc_type}-{counter.year}: numbers "
                f"{sorted(missing)[:10]} are not accounted for"
            )
    _verify_inputs(archive, report)
    report.problems += holds.hold_findings(archive)
    return report


def _check_retention(archive: Archive, key: str, version_id: str,
                     at_least_until: datetime | None, report: VerifyReport, *,
                     name: str = "", store: DocumentStore | None = None) -> None:
    try:
        info = (store or archive.store).stat(key, version_id=version_id)
    except NotFound:
        return  # reported as missing already
    problem = retention_problem(info, mode=archive.settings.retention_mode,
                                at_least_until=at_least_until)
    if problem is not None:
        report.problems.append(f"{name or key}: the object {problem}")


def _check_signature(entry: ArchiveEntry, data: bytes, roots: list[bytes],
                     report: VerifyReport) -> None:
    report.signatures_checked += 1
    check = signing.check_signature(data, trust_roots=roots)
    if not check.ok:
        report.problems.append(f"{entry.serial}: signature: {check.problem or 'not valid'}")
    elif check.serial and check.serial != entry.serial:
        report.problems.append(f"{entry.serial}: the signature names serial {check.serial}")


def _verify_inputs(archive: Archive, report: VerifyReport) -> None:
    """Every input version: its bytes against the SHA-256 it was stored with, and its own
    retention (the inputs' policy)."""
    for version in archive.inputs.versions():
        report.inputs_checked += 1
        try:
            info = archive.inputs.stat(version.key, version_id=version.version_id)
            data = archive.inputs.get(version.key, version_id=version.version_id)
        except NotFound:
            report.problems.append(f"input {version.key} ({version.version_id}) is missing")
            continue
        recorded = info.metadata.get("sha256")
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            report.problems.append(f"input {version.key} ({version.version_id}) does not "
                                   "match its SHA-256")
        problem = retention_problem(info, mode=archive.settings.retention_mode,
                                    at_least_until=None)
        if problem is not None:
            report.problems.append(f"input {version.key} ({version.version_id}): the object "
                                   f"{problem}")

def _verify_entry(archive: Archive, entry: ArchiveEntry, versions: list[ObjectVersion],
                  report: VerifyReport) -> bytes | None:
    """Re-hash one document and look at its versions; its bytes (None when missing)."""
    try:
        data = archive.store.get(entry.object_key, version_id=entry.version_id)
    except NotFound:
        report.problems.append(f"{entry.serial}: object {entry.object_key} is missing")
        return None
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        report.problems.append(f"{entry.serial}: indexed version does not match its SHA-256")
    others = [v for v in versions if v.version_id != entry.version_id]
    if not others:
        return data
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    same = sum(1 for v in others if v.etag == md5)
    kinds = ", ".join(part for part in (f"{same} more with the same bytes" if same else "",
                                        f"{len(others) - same} with different content"
                                        if len(others) > same else "") if part)
    latest = versions[0]
    if latest.version_id != entry.version_id:
        report.problems.append(
            f"{entry.serial}: a newer, unindexed version {latest.version_id} exists "
            f"({'same content' if latest.etag == md5 else 'different content'}); "
            f"{len(versions)} versions under one serial ({kinds})")
    else:
        report.problems.append(
            f"{entry.serial}: {len(versions)} versions under one serial ({kinds})")
    return data

def rebuild_index(archive: Archive, *, progress: Callable[[int], None] | None = None
              ) -> RebuildReport:
    """Recreate index, serial records and counters from the bucket's metadata alone.

    For each key the oldest version is the archived document (later versions are late
    duplicates or overwrites, which ``verify`` reports).  When objects under several
    serials claim the same document (type, subject key, revision) -- an upload that
    arrived after its serial was voided and the document was stored again -- the highest
    number is the document and the others become void records.  Voids recorded in the
    bucket (``.void`` markers) and in the database being rebuilt stay void with their
    reasons; counters resume after the highest number seen anywhere, void or not (a number
    once handed out is never handed out again).  Numbers with no object become void records.
    """
    report = RebuildReport()
    report.inputs = sum(1 for _ in archive.inputs.versions())
    oldest: dict[str, str] = {}
    voids: dict[str, str] = {}  # serial -> reason: markers in the bucket, then the old index
    for version in archive.store.versions():
        if is_document_key(version.key):
            oldest[version.key] = version.version_id  # listing is newest first per key
        elif (voided := void_marker_serial(version.key)) is not None:
            voids[voided] = _marker_reason(archive, version.key, version.version_id)
    with new_session(archive.engine) as session:  # what the database knew survives too
        for record in session.exec(select(SerialRecord).where(
                SerialRecord.status == SerialStatus.VOID)):
            voids.setdefault(record.serial, record.reason)
        counted = {(c.branch, c.doc_type, c.year): c.last_number
                   for c in session.exec(select(SerialCounter))}
    documents: dict[tuple[str, str, int], list[ArchiveEntry]] = defaultdict(list)
    for done, (key, version_id) in enumerate(sorted(oldest.items()), start=1):
        info = archive.store.stat(key, version_id=version_id)
        if progress is not None:
            progress(done)
        try:
            entry = entry_from_metadata(key, info)
        except (KeyError, ValueError, BrokerflowError) as exc:
            report.skipped.append(f"{key}: metadata incomplete ({exc})")
            continue
        documents[(entry.doc_type, entry.subject_key, entry.revision)].append(entry)
    entries: list[ArchiveEntry] = []
    duplicates: list[tuple[ArchiveEntry, ArchiveEntry]] = []
    for claims in documents.values():
        claims.sort(key=lambda e: (e.year, e.number))
        entries.append(claims[-1])
        duplicates += [(earlier, claims[-1]) for earlier in claims[:-1]]
    with new_session(archive.engine) as session:
        session.execute(delete(ArchiveEntry))
        session.execute(delete(SerialRecord))
        session.execute(delete(SerialCounter))
        highest: dict[tuple[str, str, int], int] = defaultdict(int)
        used: dict[tuple[str, str, int], set[int]] = defaultdict(set)
        for entry in entries:
            group = (entry.branch, entry.doc_type, entry.year)
            highest[group] = max(highest[group], entry.number)
            used[group].add(entry.number)
            session.add(SerialRecord(
                serial=entry.serial, branch=entry.branch, doc_type=entry.doc_type,
                year=entry.year, number=entry.number, subject_key=entry.subject_key,
                revision=entry.revision, status=SerialStatus.STORED,
                allocated_at=entry.created_at, settled_at=entry.created_at,
            ))
            session.add(entry)
        for earlier, kept in duplicates:
            group = (earlier.branch, earlier.doc_type, earlier.year)
            highest[group] = max(highest[group], earlier.number)
            used[group].add(earlier.number)
            session.add(SerialRecord(
                serial=earlier.serial, branch=earlier.branch, doc_type=earlier.doc_type,
                year=earlier.year, number=earlier.number,
                subject_key=f"void:{earlier.serial}", status=SerialStatus.VOID,
                reason=f"rebuilt from bucket: the same document is stored as {kept.serial} "
                       "(this upload arrived after its serial was voided)",
            ))
            report.voided_duplicates += 1
        for serial_text, reason in sorted(voids.items()):
            serial = parse_serial(serial_text)
            group = (serial.branch, serial.doc_type, serial.year)
            highest[group] = max(highest[group], serial.number)
            if serial.number in used[group]:
                continue  # a document is stored under it after all (verify reports that)
            used[group].add(serial.number)
            session.add(SerialRecord(
                serial=serial_text, branch=serial.branch, doc_type=serial.doc_type,
                year=serial.year, number=serial.number, subject_key=f"void:{serial_text}",
                status=SerialStatus.VOID, reason=reason))
            report.voids_kept += 1
        for group, last in counted.items():  # never below a number handed out before
            highest[group] = max(highest[group], last)
        for (branch, doc_type, year), last in highest.items():
            session.add(SerialCounter(branch=branch, doc_type=doc_type, year=year,
                                      last_number=last))
            for number in sorted(set(range(1, last + 1)) - used[(branch, doc_type, year)]):
                serial = Serial(branch, doc_type, year, number)
                session.add(SerialRecord(
                    serial=str(serial), branch=branch, doc_type=doc_type, year=year,
                    number=number, subject_key=f"void:{serial}", status=SerialStatus.VOID,
                    reason="rebuilt from bucket: no object under this number",
                ))
                report.voided_gaps += 1
        session.commit()
    report.indexed = len(entries)
    return report


def _marker_reason(archive: Archive, key: str, version_id: str) -> str:
    try:
        data = json.loads(archive.store.get(key, version_id=version_id))
        return str(data.get("reason", ""))[:2000] or "void (marker in the bucket)"
    except (BrokerflowError, ValueError, AttributeError):
        return "void (marker in the bucket, unreadable)"

