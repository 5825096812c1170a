"""Legal holds on archived documents (SPEC §5; docs/legal-holds.md).

A ``HoldCase`` holds documents: an open client dispute, investigation or risk-fund deduction
every document of its CM (also those archived while it is open: ``hold_if_under_case``), a
manual hold (compliance) one document.  Each case's hold on a document is a ``LegalHold``
row; the object version carries the S3 legal hold while any of its rows is active.  One
document at a time, its index row locked, the S3 hold is placed before its row is committed
and lifted (when nothing else holds it) before the release is committed, so an outage
(``StorageError``) leaves no row claiming what the bucket refused -- a request whose outcome was
unknown may still land late: ``hold_findings`` reports any disagreement, ``settle_holds``
finishes the job.  Every placement and release is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from brokerflow.archive.serials import parse_serial
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import new_session, read_session
from brokerflow.kernel.errors import BadInput, NotFound, StorageError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import ArchiveEntry, HoldCase, LegalHold

if TYPE_CHECKING:
    from brokerflow.archive.service import Archive

log = logging.getLogger("brokerflow.archive.holds")
COMPLIANCE_ROLE = "compliance"  # head office's compliance dept (合规部) holds by hand
SYSTEM = "system"
MANUAL = "manual"
#: the case kinds that hold all of a CM's documents, and the prefix of their keys
CASE_PREFIXES = {"dispute": "dispute", "investigation": "case", "riskfund": "riskfund"}
MAX_REASON_CHARS = 2_000
SETTLE_HINT = "run 'brokerflow archive holds --settle' once the store answers"


def cm_case_key(kind: str, branch: str, number: int) -> str:
    """The key of a CM case: ``dispute:SZ01:7``, ``case:SZ01:3``, ``riskfund:SZ01:12``."""
    return f"{CASE_PREFIXES[kind]}:{branch}:{number}"


def hold_refusal(actor: UserView) -> str | None:
    """None when ``actor`` may place or lift a manual hold; else why not.  Pure."""
    if COMPLIANCE_ROLE in actor.roles:
        return None
    return "placing or lifting a legal hold needs the compliance role (合规部)"


@dataclass
class HoldChange:
    """What one call changed: serials newly held or released, those it could not reach."""

    case_key: str = ""
    placed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    still_held: dict[str, list[str]] = field(default_factory=dict)  # serial: other cases
    missing: list[str] = field(default_factory=list)  # indexed, object missing

    def add(self, other: HoldChange) -> None:
        self.placed += other.placed
        self.released += other.released
        self.still_held.update(other.still_held)
        self.missing += other.missing


@dataclass(frozen=True)
class ActiveHold:
    """One active hold as ``archive holds`` lists it."""

    serial: str
    case_key: str
    kind: str
    cm_id: str | None
    reason: str
    placed_by: str
    placed_at: datetime


# --------------------------------------------------------------------------- one document


def _locked_entry(session: Session, serial: str) -> ArchiveEntry | None:
    """The index row of ``serial``, locked: hold changes of one document are serialised."""
    return session.exec(select(ArchiveEntry).where(col(ArchiveEntry.serial) == serial)
                        .with_for_update()).first()


def _active(session: Session, serial: str) -> list[LegalHold]:
    return list(session.exec(select(LegalHold).where(
        LegalHold.serial == serial, col(LegalHold.released_at).is_(None))
        .order_by(col(LegalHold.id))))


def _set_hold(archive: Archive, entry: ArchiveEntry, *, on: bool) -> None:
    archive.store.set_legal_hold(entry.object_key, version_id=entry.version_id, on=on)


def _place(archive: Archive, *, serial: str, key: str, actor_id: str, reason: str) -> bool:
    """Hold ``serial`` for the open case ``key`` (S3 first, then the row); False when the case
    holds it already or is closed.  NotFound when the object is missing."""
    with new_session(archive.engine) as session:
        entry = _locked_entry(session, serial)
        if entry is None:
            raise NotFound(f"no archived document {serial}")
        case = session.exec(select(HoldCase).where(HoldCase.case_key == key)
                            .with_for_update()).first()
        if case is None or case.closed_at is not None:
            return False
        if any(row.case_key == key for row in _active(session, serial)):
            return False
        _set_hold(archive, entry, on=True)
        session.add(LegalHold(serial=serial, case_key=key, placed_by=actor_id))
        append_audit(session, actor_id=actor_id, action="legal-hold-placed", request_key=key,
                     details={"serial": serial, "case": key, "kind": case.kind,
                              "cm": entry.cm_id, "reason": reason})
        session.commit()
    return True


def _release(archive: Archive, *, serial: str, key: str, actor_id: str,
             reason: str) -> list[str] | None:
    """End ``key``'s hold on ``serial``; the S3 hold is lifted (before the release is
    committed) when no other case still holds it.  The other cases' keys; None when ``key``
    did not hold it."""
    with new_session(archive.engine) as session:
        entry = _locked_entry(session, serial)
        rows = _active(session, serial)
        mine = [row for row in rows if row.case_key == key]
        if not mine:
            return None
        others = sorted({row.case_key for row in rows if row.case_key != key})
        for row in mine:
            row.released_at, row.released_by = utcnow(), actor_id
            session.add(row)
        append_audit(session, actor_id=actor_id, action="legal-hold-released",
                     request_key=key, details={"serial": serial, "case": key,
                                               "reason": reason, "still_held_by": others})
        if not others and entry is not None:
            try:
                _set_hold(archive, entry, on=False)
            except NotFound:
                log.warning("%s: object missing, nothing to lift", serial)
        session.commit()
    return others


def _interrupted(exc: StorageError, *, key: str, serial: str, doing: str) -> StorageError:
    return StorageError(f"{key}: the legal hold of {serial} could not be {doing} ({exc}); "
                        f"{SETTLE_HINT}")


# --------------------------------------------------------------------------- CM cases


def open_case_hold(archive: Archive, *, case_key: str, kind: str, branch: str, cm_id: str,
                   reason: str, actor_id: str) -> HoldChange:
    """Open the hold case ``case_key`` on ``cm_id`` and hold every document of the CM.
    Idempotent (a second call holds what the first could not); a closed case stays closed."""
    if kind not in CASE_PREFIXES:
        raise BadInput(f"kind must be one of {', '.join(CASE_PREFIXES)}", column="kind")
    change, reason = HoldChange(case_key=case_key), reason.strip()
    with new_session(archive.engine) as session:
        case = session.exec(select(HoldCase).where(HoldCase.case_key == case_key)).first()
        if case is None:
            session.add(HoldCase(case_key=case_key, kind=kind, branch=branch, cm_id=cm_id,
                                 reason=reason, opened_by=actor_id))
            append_audit(session, actor_id=actor_id, action="legal-hold-case-opened",
                         request_key=case_key, details={"case": case_key, "kind": kind,
                                                        "cm": cm_id, "reason": reason})
            session.commit()
        elif case.closed_at is not None:
            return change
    with read_session(archive.engine) as session:
        serials = list(session.exec(select(ArchiveEntry.serial).where(
            ArchiveEntry.cm_id == cm_id).order_by(col(ArchiveEntry.serial))))
    for serial in serials:
        try:
            if _place(archive, serial=serial, key=case_key, actor_id=actor_id, reason=reason):
                change.placed.append(serial)
        except NotFound:
            change.missing.append(serial)
        except StorageError as exc:
            raise _interrupted(exc, key=case_key, serial=serial, doing="placed") from exc
    return change


def close_case_hold(archive: Archive, *, case_key: str, actor_id: str,
                    reason: str) -> HoldChange:
    """Close the hold case and release its holds; a document another open case (or a manual
    hold) still holds keeps its S3 hold.  Idempotent; a case never opened is a no-op."""
    change = HoldChange(case_key=case_key)
    with new_session(archive.engine) as session:
        case = session.exec(select(HoldCase).where(HoldCase.case_key == case_key)
                            .with_for_update()).first()
        if case is None:
            return change
        if case.closed_at is None:
            case.closed_at, case.closed_by, case.close_reason = utcnow(), actor_id, reason
            session.add(case)
            append_audit(session, actor_id=actor_id, action="legal-hold-case-closed",
                         request_key=case_key, details={"case": case_key, "cm": case.cm_id,
                                                        "reason": reason})
        session.commit()
    with read_session(archive.engine) as session:
        serials = sorted(set(session.exec(select(LegalHold.serial).where(
            LegalHold.case_key == case_key, col(LegalHold.released_at).is_(None)))))
    for serial in serials:
        try:
            others = _release(archive, serial=serial, key=case_key, actor_id=actor_id,
                              reason=reason)
        except StorageError as exc:
            raise _interrupted(exc, key=case_key, serial=serial, doing="lifted") from exc
        if others is None:
            continue
        change.released.append(serial)
        if others:
            change.still_held[serial] = others
    return change


def hold_if_under_case(archive: Archive, entry: ArchiveEntry) -> None:
    """Place the legal hold on a newly archived document whose CM is under an open case."""
    if not entry.cm_id:
        return
    with read_session(archive.engine) as session:
        cases = list(session.exec(select(HoldCase).where(
            HoldCase.cm_id == entry.cm_id, col(HoldCase.closed_at).is_(None))))
    for case in cases:
        try:
            _place(archive, serial=entry.serial, key=case.case_key, actor_id=SYSTEM,
                   reason=f"archived while {case.case_key} is open")
        except StorageError as exc:
            raise StorageError(f"{entry.serial} is archived, but its legal hold "
                               f"({case.case_key}) could not be placed ({exc}); "
                               f"{SETTLE_HINT}") from exc


def settle_holds(archive: Archive, *, actor_id: str) -> HoldChange:
    """Finish what an outage interrupted: every open case holds all its CM's documents, no
    closed case holds any."""
    with read_session(archive.engine) as session:
        open_cases = list(session.exec(select(HoldCase).where(
            col(HoldCase.closed_at).is_(None), HoldCase.kind != MANUAL)))
        closing = sorted(set(session.exec(
            select(HoldCase.case_key).join(LegalHold, col(LegalHold.case_key) == col(
                HoldCase.case_key)).where(col(HoldCase.closed_at).is_not(None),
                                          col(LegalHold.released_at).is_(None)))))
    change = HoldChange()
    for case in open_cases:
        assert case.cm_id is not None
        change.add(open_case_hold(archive, case_key=case.case_key, kind=case.kind,
                                  branch=case.branch, cm_id=case.cm_id, reason=case.reason,
                                  actor_id=actor_id))
    for key in closing:
        change.add(close_case_hold(archive, case_key=key, actor_id=actor_id,
                                   reason="settled after an interruption"))
    return change


# --------------------------------------------------------------------------- manual holds


def _checked(archive: Archive, *, serial: str, actor: UserView, reason: str,
             action: str) -> tuple[str, str]:
    """(serial, reason) once ``actor`` may ``action`` and both are valid; refusals logged."""
    refusal = hold_refusal(actor)
    if refusal is not None:
        raise archive.deny(actor, action, serial, refusal)
    text = reason.strip()
    if not text or len(text) > MAX_REASON_CHARS:
        raise BadInput(f"a reason of 1-{MAX_REASON_CHARS} characters is required",
                       column="--reason")
    serial = str(parse_serial(serial))
    with read_session(archive.engine) as session:
        known = session.get(ArchiveEntry, serial) is not None
    if not known:
        archive.log_refusal(actor.user_id, action, reason="no such serial", target=serial)
        raise NotFound(f"no archived document {serial}")
    return serial, text


def hold_document(archive: Archive, *, serial: str, actor: UserView,
                  reason: str) -> HoldChange:
    """Place a manual hold on one document (compliance only).  Idempotent: a document held
    by hand already keeps that hold (its S3 hold is placed again if the bucket lost it)."""
    serial, text = _checked(archive, serial=serial, actor=actor, reason=reason, action="hold")
    with new_session(archive.engine) as session:
        entry = _locked_entry(session, serial)
        assert entry is not None
        manual = [r for r in _active(session, serial) if r.case_key.startswith(f"{MANUAL}:")]
        if manual:
            if not archive.store.stat(entry.object_key, version_id=entry.version_id
                                      ).legal_hold:
                _set_hold(archive, entry, on=True)
            return HoldChange(case_key=manual[0].case_key)
        number = len(session.exec(select(HoldCase.id).where(
            col(HoldCase.case_key).startswith(f"{MANUAL}:{serial}:"))).all()) + 1
        key = f"{MANUAL}:{serial}:{number}"
        _set_hold(archive, entry, on=True)
        session.add(HoldCase(case_key=key, kind=MANUAL, branch=entry.branch, reason=text,
                             opened_by=actor.user_id))
        session.add(LegalHold(serial=serial, case_key=key, placed_by=actor.user_id))
        append_audit(session, actor_id=actor.user_id, action="legal-hold-placed",
                     request_key=key, details={"serial": serial, "case": key,
                                               "kind": MANUAL, "reason": text})
        session.commit()
    return HoldChange(case_key=key, placed=[serial])


def release_document(archive: Archive, *, serial: str, actor: UserView,
                     reason: str) -> HoldChange:
    """Lift a manual hold (compliance only); refused (exit 3, logged) while an open case
    holds the document.  A document nothing holds: nothing to do, unless the bucket holds it
    without any record (then that hold is lifted)."""
    serial, text = _checked(archive, serial=serial, actor=actor, reason=reason,
                            action="release")
    cases = [h.case_key for h in active_holds(archive, serial=serial) if h.kind != MANUAL]
    with read_session(archive.engine) as session:
        open_keys = set(session.exec(select(HoldCase.case_key).where(
            col(HoldCase.case_key).in_(cases), col(HoldCase.closed_at).is_(None))))
    if open_keys:
        raise archive.deny(actor, "release", serial,
                           f"held by open case(s) {', '.join(sorted(open_keys))}: their hold "
                           "ends when the case closes")
    change = HoldChange()
    with new_session(archive.engine) as session:
        entry = _locked_entry(session, serial)
        assert entry is not None
        rows = _active(session, serial)
        manual = [r for r in rows if r.case_key.startswith(f"{MANUAL}:")]
        others = sorted({r.case_key for r in rows} - {r.case_key for r in manual})
        for row in manual:
            row.released_at, row.released_by = utcnow(), actor.user_id
            session.add(row)
            case = session.exec(select(HoldCase).where(HoldCase.case_key == row.case_key)
                                ).one()
            case.closed_at, case.closed_by, case.close_reason = utcnow(), actor.user_id, text
            session.add(case)
            change.case_key = row.case_key
        orphan = not rows and archive.store.stat(
            entry.object_key, version_id=entry.version_id).legal_hold
        if manual or orphan:
            append_audit(session, actor_id=actor.user_id, action="legal-hold-released",
                         request_key=change.case_key or f"{MANUAL}:{serial}",
                         details={"serial": serial, "case": change.case_key, "reason": text,
                                  "still_held_by": others,
                                  **({"note": "held in the bucket without a record"}
                                     if orphan else {})})
            if not others:
                _set_hold(archive, entry, on=False)
            change.released.append(serial)
            if others:
                change.still_held[serial] = others
        session.commit()
    return change


# --------------------------------------------------------------------------- reading


def active_holds(archive: Archive, *, serial: str | None = None) -> list[ActiveHold]:
    """Every active hold (one document's with ``serial``), by serial then case."""
    statement = select(LegalHold, HoldCase).join(
        HoldCase, col(HoldCase.case_key) == col(LegalHold.case_key)).where(
        col(LegalHold.released_at).is_(None))
    if serial:
        statement = statement.where(LegalHold.serial == serial.strip())
    with read_session(archive.engine) as session:
        rows = session.exec(statement.order_by(col(LegalHold.serial),
                                               col(LegalHold.case_key))).all()
    return [ActiveHold(serial=hold.serial, case_key=hold.case_key, kind=case.kind,
                       cm_id=case.cm_id, reason=case.reason, placed_by=hold.placed_by,
                       placed_at=hold.placed_at) for hold, case in rows]


def hold_findings(archive: Archive) -> list[str]:
    """Where the holds the database records and the bucket's legal holds disagree, and what
    the open and closed cases still owe (each one line, for ``archive verify``)."""
    findings: list[str] = []
    held: dict[str, set[str]] = {}
    for hold in active_holds(archive):
        held.setdefault(hold.serial, set()).add(hold.case_key)
    with read_session(archive.engine) as session:
        entries = list(session.exec(select(ArchiveEntry).order_by(col(ArchiveEntry.serial))))
        cases = list(session.exec(select(HoldCase).where(HoldCase.kind != MANUAL)))
    open_cases = {c.case_key: c for c in cases if c.closed_at is None}
    for entry in entries:
        cases_here = held.get(entry.serial, set())
        for key, case in open_cases.items():
            if case.cm_id == entry.cm_id and key not in cases_here:
                findings.append(f"{entry.serial}: {case.cm_id} is under open case {key}, but "
                                "the document is not held by it")
        for key in sorted(cases_here):
            if key not in open_cases and not key.startswith(f"{MANUAL}:"):
                findings.append(f"{entry.serial}: case {key} is closed but still holds it")
        try:
            on = archive.store.stat(entry.object_key, version_id=entry.version_id).legal_hold
        except NotFound:
            continue  # verify reports the missing object
        except StorageError as exc:
            findings.append(f"{entry.serial}: its legal hold could not be read: {exc}")
            continue
        if cases_here and not on:
            findings.append(f"{entry.serial}: held by {', '.join(sorted(cases_here))} in the "
                            "database, but the object has no legal hold")
        elif on and not cases_here:
            findings.append(f"{entry.serial}: the object carries a legal hold the database "
                            "does not know")
    return findings
