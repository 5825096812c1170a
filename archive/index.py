"""The archive's SQL side: serial allocation, void records, index rows, access log.

Keyword-only functions taking a ``Session``; the caller decides when to commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy import exc as sa_exc
from sqlmodel import Session, col, select

from brokerflow.archive.access import ReadableScope
from brokerflow.archive.serials import MAX_NUMBER, SERIAL_PATTERN, format_serial
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import BadInput, BrokerflowError
from brokerflow.kernel.models import (
    AccessLogEntry,
    ArchiveEntry,
    SerialCounter,
    SerialRecord,
)
from brokerflow.kernel.vocabulary import DocumentStatus, SerialStatus


class SerialRangeExhausted(BrokerflowError):
    """All 999,999 numbers of a (branch, type, year) are used."""


def find_live_record(
    session: Session, *, doc_type: str, subject_key: str, revision: int
) -> SerialRecord | None:
    """The reserved or stored serial of a document subject+revision, if any."""
    return session.exec(
        select(SerialRecord).where(
            SerialRecord.doc_type == doc_type,
            SerialRecord.subject_key == subject_key,
            SerialRecord.revision == revision,
            SerialRecord.status != SerialStatus.VOID,
        )
    ).first()


def next_number(session: Session, *, branch: str, doc_type: str, year: int) -> int:
    """Increment and return the counter of (branch, type, year) inside the caller's transaction.

    The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite, BEGIN IMMEDIATE), so
    concurrent transactions queue and every committed number is unique and consecutive.
    """
    where = (
        col(SerialCounter.branch) == branch,
        col(SerialCounter.doc_type) == doc_type,
        col(SerialCounter.year) == year,
    )
    bump = update(SerialCounter).where(*where).values(last_number=SerialCounter.last_number + 1)
    if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(SerialCounter(branch=branch, doc_type=doc_type, year=year,
                                          last_number=1))
        except sa_exc.IntegrityError:  # another transaction created it first
            session.execute(bump)
    number = session.exec(select(SerialCounter.last_number).where(*where)).one()
    if number > MAX_NUMBER:
        raise SerialRangeExhausted(f"{branch}-{doc_type}-{year}: all {MAX_NUMBER} numbers used")
    return number


def allocate_serial(
    session: Session, *, branch: str, doc_type: str, year: int, subject_key: str, revision: int,
    owner: str | None = None,
) -> SerialRecord:
    """Reserve the next serial for a document; the caller commits before storing the object.

    ``owner`` (a flow run id) may continue the reservation if its put is interrupted.
    """
    number = next_number(session, branch=branch, doc_type=doc_type, year=year)
    record = SerialRecord(
        serial=format_serial(branch, doc_type, year, number),
        branch=branch, doc_type=doc_type, year=year, number=number,
        subject_key=subject_key, revision=revision, owner=owner,
    )
    session.add(record)
    session.flush()
    return record


def void_serial(session: Session, *, serial: str, reason: str) -> None:
    """Record that ``serial``'s document was not stored; the number is never reused."""
    record = session.get(SerialRecord, serial)
    if record is None:
        raise KeyError(serial)
    record.status = SerialStatus.VOID
    record.reason = reason[:2000]
    record.settled_at = utcnow()
    session.add(record)


def index_document(session: Session, *, entry: ArchiveEntry) -> None:
    """Write the index row of a stored, checksum-confirmed document and settle its serial."""
    record = session.get(SerialRecord, entry.serial)
    if record is None:
        raise KeyError(entry.serial)
    record.status = SerialStatus.STORED
    record.settled_at = utcnow()
    session.add(record)
    session.add(entry)


SERIAL_PREFIX = re.compile(r"[A-Za-z0-9-]{1,32}")


@dataclass(frozen=True)
class SearchFilter:
    serial: str | None = None  # a whole serial matches exactly; anything shorter is a prefix
    doc_type: str | None = None
    cm_id: str | None = None
    month: str | None = None
    status: str | None = None
    branch: str | None = None
    limit: int = 1000


def search_entries(session: Session, *, query: SearchFilter,
                   within: ReadableScope | None = None,
                   after: str | None = None) -> list[ArchiveEntry]:
    """Index rows matching every given filter, ordered by serial, at most ``query.limit``.

    ``within`` narrows to what a reader could possibly see; ``after`` starts past a serial
    (for reading on page by page).
    """
    statement = select(ArchiveEntry)
    if after is not None:
        statement = statement.where(col(ArchiveEntry.serial) > after)
    if within is not None:
        if within.branch is not None:
            statement = statement.where(ArchiveEntry.branch == within.branch)
        alternatives: list[ColumnElement[bool]] = []
        if within.cm_ids is not None:
            alternatives.append(col(ArchiveEntry.cm_id).in_(sorted(within.cm_ids)))
        if within.team:
            alternatives.append(col(ArchiveEntry.team) == within.team)
        if within.cm_ids is not None or within.team:
            statement = statement.where(or_(*alternatives))
    if query.serial:
        text = query.serial.strip().rstrip("*")
        if SERIAL_PATTERN.match(text):
            statement = statement.where(ArchiveEntry.serial == text)
        elif text:
            if not SERIAL_PREFIX.fullmatch(text):
                raise BadInput("a serial prefix has at most 32 letters, digits and '-', "
                               "e.g. SZ01-PAY-2026", column="serial")
            # a range, not LIKE: SQLite cannot use the primary-key index for a bound LIKE
            upper = text[:-1] + chr(ord(text[-1]) + 1)
            statement = statement.where(col(ArchiveEntry.serial) >= text,
                                        col(ArchiveEntry.serial) < upper)
    for column, value in (
        (ArchiveEntry.doc_type, query.doc_type),
        (ArchiveEntry.cm_id, query.cm_id),
        (ArchiveEntry.month, query.month),
        (ArchiveEntry.status, query.status),
        (ArchiveEntry.branch, query.branch),
    ):
        if value:
            statement = statement.where(column == value)
    return list(session.exec(statement.order_by(col(ArchiveEntry.serial)).limit(query.limit)))


def log_access(
    session: Session, *, user_id: str, action: str, target: str, allowed: bool, reason: str
) -> None:
    session.add(AccessLogEntry(user_id=user_id[:64], action=action, target=target[:255],
                               allowed=allowed, reason=reason))


def mark_superseded(session: Session, *, subject_keys: list[str], below_revision: int) -> int:
    """Mark the index rows of earlier revisions of these subjects superseded."""
    rows = session.exec(select(ArchiveEntry).where(
        col(ArchiveEntry.subject_key).in_(subject_keys),
        ArchiveEntry.revision < below_revision,
        ArchiveEntry.status == DocumentStatus.CURRENT))
    count = 0
    for row in rows:
        row.status = DocumentStatus.SUPERSEDED
        session.add(row)
        count += 1
    return count
