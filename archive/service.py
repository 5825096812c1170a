"""The archive: store a document under a new serial, find it, read it, verify and rebuild.

``Archive.put`` / ``Archive.archive_rendered`` are an explicit ordered pipeline of small steps:

1. validate the input (PDF, branch, type, subject, CM) and the writer's right to the branch;
2. return the existing serial when the (type, subject key, revision) is archived already; a
   reservation left by an interrupted put is continued by its owner (the same flow run) at
   once, by anyone else after the lease (indexed when its object landed, else voided);
3. allocate the serial and commit it (so the number is accounted for from now on);
4. (rendered documents) render the PDF with its serial on the page -- failure voids the serial;
5. sign it with the branch archive's key (PAdES, ``archive.signing``) -- nothing is archived
   unsigned: a missing or wrong key voids the serial with the reason;
6. store the object with its own retention (mode and retain-until date; outages waited out,
   Content-MD5, never two versions of one put) -- on failure the serial is voided unless its
   object landed after all, or an owner will retry;
7. confirm the stored bytes (ETag = MD5) and write the index row in one commit;
8. place the legal hold when the document's CM is under an open case (``archive.holds``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

import urllib3
from minio.error import S3Error
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlmodel import select

from brokerflow.archive import holds, index
from brokerflow.archive.access import DocumentScope, decide_put, decide_read, readable_scope
from brokerflow.archive.anchors import current_head, head_label
from brokerflow.archive.layout import entry_from_metadata, void_marker_key
from brokerflow.archive.serials import Serial, parse_serial
from brokerflow.archive.store import Retention, StoredObject
from brokerflow.archive.stores import DocumentStore, open_store
from brokerflow.kernel.calendar import add_years, utcnow
from brokerflow.kernel.db import new_session, read_session
from brokerflow.kernel.errors import (
    AccessDenied,
    AccessError,
    BadInput,
    NotFound,
    SigningUnavailable,
    StorageError,
)
from brokerflow.kernel.failpoints import failpoint
from brokerflow.kernel.identity import UserView, check_branch
from brokerflow.kernel.models import (
    ArchiveEntry,
    SerialRecord,
    User,
)
from brokerflow.kernel.roster import check_secret, subordinate_ids
from brokerflow.kernel.settings import Settings

if TYPE_CHECKING:
    from brokerflow.archive.integrity import RebuildReport, VerifyReport
from brokerflow.kernel.vocabulary import SerialStatus, check_doc_type

log = logging.getLogger("brokerflow.archive")
MAX_SUBJECT_LENGTH = 200
PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class DocumentSpec:
    """What a document is about; the archive derives serial, key and metadata from it."""

    branch: str
    doc_type: str
    subject: str
    subject_key: str  # with revision: one document per key+revision, ever
    revision: int = 1
    cm_id: str | None = None
    month: str | None = None  # YYYY-MM the document is about; defaults to the archive month
    source: str = "document"  # what to name in error messages (a file path, a flow)


@dataclass(frozen=True)
class Reservation:
    """A serial allocated (and committed) for a document not stored yet."""

    serial: Serial
    spec: DocumentSpec
    team: str
    month: str
    created_at: datetime
    actor_id: str
    owner: str | None = None  # a flow run that continues this reservation if interrupted


@dataclass(frozen=True)
class PutResult:
    serial: str
    created: bool  # False: the subject+revision was archived before; nothing new stored
    sha256: str


def validate_month(month: str, *, column: str = "--month") -> str:
    try:
        datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise BadInput(f"month {month!r} must be YYYY-MM", column=column) from None
    return month


class Archive:
    """Serial-numbered, checksummed documents in the object store, indexed in SQL."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: DocumentStore,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
        inputs: DocumentStore | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.inputs = inputs if inputs is not None else open_store(settings, inputs=True)
        self.settings = settings
        self._lock_available: bool | None = None
        self.store_warnings: list[str] = []  # what preparing the stores warned about (dev)
        self.zone = ZoneInfo(settings.timezone)
        self.clock = clock or (lambda: datetime.now(self.zone))

    # ------------------------------------------------------------------ identity

    def authenticate(self, user_id: str, secret: str, *, channel: str = "cli",
                     address: str = "") -> UserView:
        """Check a user's secret (``check_secret``: lockout, left users); a failure is also
        written to the access log."""
        try:
            return check_secret(self.engine, user_id=user_id, secret=secret, channel=channel,
                                address=address)
        except AccessError as exc:  # logged after the reading session is closed
            self._log(user_id, "authenticate", "", allowed=False, reason=str(exc))
            raise

    def _log(self, user_id: str, action: str, target: str, *, allowed: bool, reason: str) -> None:
        with new_session(self.engine) as session:
            index.log_access(session, user_id=user_id, action=action, target=target,
                             allowed=allowed, reason=reason)
            session.commit()

    def log_refusal(self, user_id: str, action: str, *, reason: str, target: str = "") -> None:
        """Write a refused attempt that is not a read (a forged form, a locked login)."""
        self._log(user_id[:64], action, target, allowed=False, reason=reason)

    def deny(self, user: UserView, action: str, target: str, reason: str) -> AccessDenied:
        """Log a refused ``action`` by ``user`` on ``target``; the error to raise for it."""
        self._log(user.user_id, action, target, allowed=False, reason=reason)
        return AccessDenied(f"{user.user_id} may not {action} {target}: {reason}")

    # ------------------------------------------------------------------ put

    def put(self, data: bytes, spec: DocumentSpec, *, actor: UserView,
            owner: str | None = None) -> PutResult:
        """Archive an outside PDF (``EXT``, by a user of that branch or head office: SPEC §5;
        refusals logged).  An empty ``spec.subject_key`` becomes the content hash, so the same
        file archived twice is one document."""
        if not data.startswith(PDF_MAGIC):
            raise BadInput("not a PDF (it does not start with %PDF-)", file=spec.source)
        from brokerflow.archive import signing  # pyHanko: imported when a PDF is signed

        signing.check_signable(data, source=spec.source)
        sha256 = hashlib.sha256(data).hexdigest()
        if not spec.subject_key:
            spec = replace(spec, subject_key=f"sha256:{sha256}")
        reservation = self.reserve(spec, actor=actor, owner=owner, by_hand=True)
        if isinstance(reservation, str):
            return PutResult(serial=reservation, created=False, sha256=sha256)
        return self.store_reserved(reservation, data)

    def archive_rendered(
        self, spec: DocumentSpec, render: Callable[[str], bytes], *, actor: UserView,
        owner: str | None = None,
    ) -> PutResult:
        """Reserve a serial, render the document with it on the page, store it.

        A render failure voids the serial (with the reason), like a store failure.  With an
        ``owner`` (the flow run archiving it) a store failure keeps the reservation, and the
        owner's next attempt continues it under the same serial.
        """
        reservation = self.reserve(spec, actor=actor, owner=owner)
        if isinstance(reservation, str):
            with new_session(self.engine) as session:
                entry = session.get(ArchiveEntry, reservation)
            return PutResult(serial=reservation, created=False,
                             sha256=entry.sha256 if entry else "")
        try:
            data = render(str(reservation.serial))
        except Exception as exc:
            self._void(reservation, f"render failed: {exc!r}")
            raise
        return self.store_reserved(reservation, data)

    def archive_rendered_batch(
        self, specs: list[DocumentSpec],
        render: Callable[[list[tuple[int, str]]], list[bytes | Exception]], *,
        actor: UserView, owner: str | None = None, group: int = 64,
    ) -> list[PutResult]:
        """``archive_rendered`` for many documents, their renders done together.

        Per ``group`` of specs: reserve each serial (an archived subject keeps its own),
        ``render([(index in specs, serial), ...])`` the others at once -- one PDF or error
        per pair, in order -- then store and index each through ``store_reserved``.  A failed
        render voids its serial only; the group's others are stored, then the first error is
        raised.  A store failure stops the batch: without an ``owner`` the group's serials
        not stored yet are voided (an owner's next attempt continues them).  Results follow
        ``specs``.
        """
        results: dict[int, PutResult] = {}
        for start in range(0, len(specs), group):
            reservations: dict[int, Reservation] = {}
            for i in range(start, min(start + group, len(specs))):
                reserved = self.reserve(specs[i], actor=actor, owner=owner)
                if isinstance(reserved, Reservation):
                    reservations[i] = reserved
                    continue
                with new_session(self.engine) as session:
                    entry = session.get(ArchiveEntry, reserved)
                results[i] = PutResult(serial=reserved, created=False,
                                       sha256=entry.sha256 if entry else "")
            jobs = [(i, str(r.serial)) for i, r in reservations.items()]
            try:
                rendered = list(zip(jobs, render(jobs) if jobs else [], strict=True))
            except Exception as exc:
                for reservation in reservations.values():
                    self._void(reservation, f"render failed: {exc!r}")
                raise
            failed: Exception | None = None
            for (i, _), pdf in rendered:
                reservation = reservations.pop(i)
                if isinstance(pdf, Exception):
                    self._void(reservation, f"render failed: {pdf!r}")
                    failed = failed or pdf
                    continue
                try:
                    results[i] = self.store_reserved(reservation, pdf)
                except StorageError as exc:
                    for rest in reservations.values() if owner is None else ():
                        self._void(rest, f"not stored: the batch stopped at "
                                         f"{reservation.serial}: {exc}")
                    raise
            if failed is not None:
                raise failed
        return [results[i] for i in range(len(specs))]

    def reserve(self, spec: DocumentSpec, *, actor: UserView, owner: str | None = None,
                by_hand: bool = False) -> Reservation | str:
        """Validate and allocate a serial (committed); the existing serial when the
        (type, subject key, revision) is archived already; ``owner``'s own interrupted
        reservation when there is one.  ``by_hand`` (``put``): after the input checks, the
        actor must be allowed to archive an outside document there (``decide_put``)."""
        team, month = self._validate(spec, actor=actor)
        if by_hand:
            allowed = decide_put(actor, branch=spec.branch, doc_type=spec.doc_type)
            if not allowed.allowed:
                raise self.deny(actor, "put", spec.branch, allowed.reason)
        now = self.clock()
        existing = self._existing(spec.doc_type, spec.subject_key, spec.revision, owner=owner)
        if isinstance(existing, str):
            return existing
        if existing is not None:  # continued under the same serial
            return Reservation(serial=self._serial_of(existing), spec=spec, team=team,
                               month=month, created_at=now, actor_id=actor.user_id, owner=owner)
        try:
            with new_session(self.engine) as session:
                record = index.allocate_serial(
                    session, branch=spec.branch, doc_type=spec.doc_type, year=now.year,
                    subject_key=spec.subject_key, revision=spec.revision, owner=owner,
                )
                session.commit()
        except sa_exc.IntegrityError:  # a concurrent reservation of the same subject won
            existing = self._existing(spec.doc_type, spec.subject_key, spec.revision,
                                      owner=owner)
            if not isinstance(existing, str):
                raise
            return existing
        return Reservation(serial=self._serial_of(record), spec=spec, team=team, month=month,
                           created_at=now, actor_id=actor.user_id, owner=owner)

    @staticmethod
    def _serial_of(record: SerialRecord) -> Serial:
        return Serial(record.branch, record.doc_type, record.year, record.number)

    def store_reserved(self, reservation: Reservation, data: bytes) -> PutResult:
        """Sign the document of a reservation, store it, confirm it, index it, hold it when
        its CM is under an open case; void on failure."""
        signed = self._sign(reservation, data)
        entry = self._store_object(reservation, signed)
        failpoint("archive.stored")
        self._index(reservation, entry)
        try:
            holds.hold_if_under_case(self, entry)
        except StorageError as exc:  # stored and indexed: verify reports it, --settle ends it
            log.warning("%s is archived, but its legal hold is not placed yet: %s",
                        entry.serial, exc)
        return PutResult(serial=entry.serial, created=True, sha256=entry.sha256)

    def _sign(self, reservation: Reservation, data: bytes) -> bytes:
        """The archive's PAdES signature over the whole document; the serial is voided with
        the reason when the key is missing or wrong (nothing is archived unsigned)."""
        from brokerflow.archive import signing

        serial = str(reservation.serial)
        try:
            return signing.load_signer(self.settings).sign(data, serial=serial)
        except SigningUnavailable as exc:
            self._void(reservation, f"not signed: {exc}")
            raise
        except Exception as exc:  # a PDF pyHanko cannot extend: account for the number
            self._void(reservation, f"not signed: {exc!r}")
            raise SigningUnavailable(f"{serial}: the document could not be signed "
                                     f"({exc.__class__.__name__}); the serial is void") from exc

    def _signer_fingerprint(self) -> str:
        from brokerflow.archive.signing import load_signer

        return load_signer(self.settings).fingerprint

    def retention_for(self, moment: datetime, *, years: int | None = None) -> Retention | None:
        """The per-object retention of something stored at ``moment``: the configured mode,
        until ``moment`` plus the policy's years (None only for a development bucket without
        Object Lock, which ``up`` warned about)."""
        if self.settings.dev:  # production: an endpoint without Object Lock refuses the put
            if self._lock_available is None:
                try:
                    self._lock_available = self.store.lock_mode() is not None
                except (S3Error, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise StorageError(f"cannot read the Object Lock of "
                                       f"{self.store.location()}: {exc}") from exc
            if not self._lock_available:
                return None
        until = add_years(moment.astimezone(UTC), years or self.settings.retention_years)
        return Retention(mode=self.settings.retention_mode, retain_until=until)

    def put_input(self, key: str, data: bytes, *, metadata: dict[str, str],
                  content_type: str) -> StoredObject:
        """Store an input (a CRM export file) in the inputs store, apart from the records,
        with the inputs' own retention; a corrected file becomes the key's newest version."""
        retention: Retention | None = Retention(
            mode=self.settings.retention_mode,
            retain_until=add_years(utcnow(), self.settings.inputs_retention_years))
        if self.settings.dev and self.inputs.lock_mode() is None:
            retention = None  # a development bucket without Object Lock (up warned)
        return self.inputs.put(key, data, metadata=metadata, content_type=content_type,
                               new_version=True, retention=retention)

    def _store_object(self, reservation: Reservation, data: bytes) -> ArchiveEntry:
        """Put the object (checksum confirmed by the store); the index row it will need."""
        spec, serial = reservation.spec, reservation.serial
        sha256 = hashlib.sha256(data).hexdigest()
        metadata = {
            "serial": str(serial), "type": spec.doc_type, "subject": spec.subject,
            "sha256": sha256, "branch": spec.branch, "subject-key": spec.subject_key,
            "revision": str(spec.revision), "cm": spec.cm_id or "", "team": reservation.team,
            "month": reservation.month, "created-by": reservation.actor_id,
            "created-at": reservation.created_at.isoformat(),
            "audit-head": head_label(current_head(self)),  # an anchor of the audit chain
            "signed-by": self._signer_fingerprint(),
        }
        try:
            stored = self.store.put(serial.object_key, data, metadata=metadata,
                                    retention=self.retention_for(reservation.created_at))
        except StorageError as exc:
            landed = self._landed_after_all(serial.object_key, data)
            if landed is None:
                if reservation.owner is None:  # nobody will continue it: account for it now
                    self._void(reservation, f"store failed: {exc}")
                raise
            stored = landed
        return ArchiveEntry(
            serial=str(serial), branch=spec.branch, doc_type=spec.doc_type,
            year=serial.year, number=serial.number, subject=spec.subject,
            subject_key=spec.subject_key, revision=spec.revision, cm_id=spec.cm_id,
            team=reservation.team, month=reservation.month, sha256=sha256, size=len(data),
            created_by=reservation.actor_id, created_at=reservation.created_at,
            object_key=serial.object_key, version_id=stored.version_id,
        )

    def _index(self, reservation: Reservation, entry: ArchiveEntry) -> None:
        with new_session(self.engine) as session:
            index.index_document(session, entry=entry)
            index.log_access(session, user_id=reservation.actor_id, action="put",
                             target=entry.serial, allowed=True, reason=reservation.spec.source)
            session.commit()

    def _landed_after_all(self, key: str, data: bytes) -> StoredObject | None:
        """The version of ``key`` holding ``data`` if a failed put reached the bucket anyway
        (one look; None when it did not or the store cannot say)."""
        try:
            return self.store.landed(key, hashlib.md5(data, usedforsecurity=False).hexdigest())
        except (StorageError, S3Error, urllib3.exceptions.HTTPError, OSError):
            return None

    def _void(self, reservation: Reservation, reason: str) -> None:
        with new_session(self.engine) as session:
            index.void_serial(session, serial=str(reservation.serial), reason=reason)
            session.commit()
        self.store_void_marker(str(reservation.serial), reason)

    def store_void_marker(self, serial: str, reason: str) -> bool:
        """Record a void in the bucket too (``<serial>.void`` beside where its PDF would be),
        so that ``rebuild-index`` restores it and never hands the number out again.  False
        when the store is down (``verify`` writes the markers still missing)."""
        key = void_marker_key(serial)
        body = json.dumps({"serial": serial, "status": "void", "reason": reason},
                          ensure_ascii=False).encode()
        try:
            self.store.put(key, body, metadata={"serial": serial, "status": "void"},
                           content_type="application/json",
                           retention=self.retention_for(utcnow()))
        except StorageError as exc:
            log.warning("void marker of %s not stored yet: %s", serial, exc)
            return False
        return True

    def _validate(self, spec: DocumentSpec, *, actor: UserView) -> tuple[str, str]:
        """(team, month) after every input check; raises before anything is written."""
        check_branch(spec.branch)
        check_doc_type(spec.doc_type)
        subject = spec.subject.strip()
        if not subject or len(subject) > MAX_SUBJECT_LENGTH:
            raise BadInput(f"subject must be 1-{MAX_SUBJECT_LENGTH} characters",
                           column="--subject")
        if not spec.subject_key or len(spec.subject_key) > 255:
            raise BadInput("subject key must be 1-255 characters", column="subject_key")
        if spec.revision < 1:
            raise BadInput("revision must be 1 or more", column="revision")
        month = validate_month(spec.month) if spec.month else self.clock().strftime("%Y-%m")
        with new_session(self.engine) as session:
            branch_known = session.exec(
                select(User.user_id).where(User.branch == spec.branch).limit(1)
            ).first()
            if branch_known is None:
                raise BadInput(f"branch {spec.branch!r} has nobody on the roster",
                               column="--branch")
            team = ""
            if spec.cm_id is not None:
                cm = session.get(User, spec.cm_id)
                if cm is None:
                    raise BadInput(f"unknown CM {spec.cm_id!r}: not on the roster",
                                   column="--cm")
                if cm.branch != spec.branch:
                    raise BadInput(f"CM {spec.cm_id!r} belongs to branch {cm.branch}, "
                                   f"not {spec.branch}", column="--cm")
                team = cm.team
        if not (actor.is_head_office or actor.branch == spec.branch):
            raise self.deny(actor, "put", spec.branch, "writer is not of this branch")
        return team, month

    def _existing(self, doc_type: str, subject_key: str, revision: int, *,
                  owner: str | None = None) -> str | SerialRecord | None:
        """The stored serial of this subject+revision; the owner's own reservation to continue;
        or None when there is neither.

        A reservation whose put was interrupted is settled first -- at once by its owner,
        by anyone else after the lease: indexed when its object reached the bucket, else
        (others) voided -- so the number stays accounted for.
        """
        with new_session(self.engine) as session:
            record = index.find_live_record(
                session, doc_type=doc_type, subject_key=subject_key, revision=revision
            )
        if record is None:
            return None
        if record.status == SerialStatus.STORED:
            return record.serial
        if owner is not None and record.owner == owner:
            indexed = self._index_landed(record)
            return indexed if indexed is not None else record
        age = (utcnow() - record.allocated_at).total_seconds()
        if age < self.settings.reservation_lease_seconds:
            raise StorageError(
                f"{record.serial} is being archived for this subject right now "
                f"(reserved {age:.0f}s ago); try again later"
            )
        return self._settle_interrupted(record)

    def _index_landed(self, record: SerialRecord) -> str | None:
        """Index the object of a reservation if it reached the bucket; its serial, else None."""
        key = self._serial_of(record).object_key
        versions = [v for v in self.store.versions(key) if v.key == key]
        if not versions:
            return None
        try:
            entry = entry_from_metadata(key, self.store.stat(
                key, version_id=versions[-1].version_id))
        except (KeyError, ValueError, NotFound):
            return None
        if entry.serial != record.serial:
            return None
        with new_session(self.engine) as session:
            index.index_document(session, entry=entry)
            session.commit()
        return record.serial

    def _settle_interrupted(self, record: SerialRecord) -> str | None:
        indexed = self._index_landed(record)
        if indexed is not None:
            return indexed
        reason = "put interrupted: no object stored within the lease"
        with new_session(self.engine) as session:
            index.void_serial(session, serial=record.serial, reason=reason)
            session.commit()
        self.store_void_marker(record.serial, reason)
        return None

    # ------------------------------------------------------------------ read

    def _scope(self, entry: ArchiveEntry) -> DocumentScope:
        return DocumentScope(branch=entry.branch, team=entry.team, cm_id=entry.cm_id)

    def _subordinates(self, user: UserView) -> frozenset[str]:
        if user.is_head_office:
            return frozenset()
        with read_session(self.engine) as session:
            return frozenset(subordinate_ids(session, user.user_id))

    def get(self, serial: str, *, actor: UserView) -> tuple[ArchiveEntry, bytes]:
        """The index row and the checksum-verified PDF of ``serial``, if ``actor`` may read it."""
        parse_serial(serial)
        with read_session(self.engine) as session:
            entry = session.get(ArchiveEntry, serial)
        if entry is None:
            self._log(actor.user_id, "get", serial, allowed=False, reason="no such serial")
            raise NotFound(f"no archived document {serial}")
        decision = decide_read(actor, self._scope(entry), subordinates=self._subordinates(actor))
        if not decision.allowed:
            raise self.deny(actor, "read", serial, decision.reason)
        data = self.store.get(entry.object_key, version_id=entry.version_id)
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            self._log(actor.user_id, "get", serial, allowed=False, reason="checksum mismatch")
            raise StorageError(f"{serial}: stored object does not match its checksum")
        self._log(actor.user_id, "get", serial, allowed=True, reason=decision.reason)
        return entry, data

    def search(self, query: index.SearchFilter, *, actor: UserView) -> list[ArchiveEntry]:
        """Index rows matching ``query`` that ``actor`` may see."""
        if query.month:
            validate_month(query.month)
        if query.doc_type:
            check_doc_type(query.doc_type)
        subordinates = self._subordinates(actor)
        within = readable_scope(actor, subordinates=subordinates)
        visible: list[ArchiveEntry] = []
        scanned, after = 0, None
        # The query is narrowed to what the actor could see, then every row is still decided
        # by decide_read; pages continue until ``limit`` visible rows or the end.
        while len(visible) < query.limit:
            with read_session(self.engine) as session:
                rows = index.search_entries(session, query=query, within=within, after=after)
            scanned += len(rows)
            for entry in rows:
                if decide_read(actor, self._scope(entry), subordinates=subordinates).allowed:
                    visible.append(entry)
                    if len(visible) == query.limit:
                        break
            if len(rows) < query.limit:
                break
            after = rows[-1].serial
        self._log(actor.user_id, "search", query.serial or "", allowed=True,
                  reason=f"{len(visible)} of {scanned} matches visible")
        return visible

    # ------------------------------------------------------------------ integrity

    def verify(self, *, progress: Callable[[int], None] | None = None,
               signatures: bool = False) -> VerifyReport:
        """Re-hash every indexed object; check its retention (and with ``signatures`` its
        PAdES signature); account for every serial and object (``archive.integrity``)."""
        from brokerflow.archive.integrity import verify

        return verify(self, progress=progress, signatures=signatures)

    def rebuild_index(self, *, progress: Callable[[int], None] | None = None
                      ) -> RebuildReport:
        """Recreate index, serial records and counters from the bucket alone."""
        from brokerflow.archive.integrity import rebuild_index

        return rebuild_index(self, progress=progress)

    def document_link(self, serial: str) -> str:
        """The archive page's address of a document, for form descriptions: opening it
        checks SPEC §5 access and logs the read ('' when there is no serial)."""
        if not serial:
            return ""
        return f"{self.settings.web_url.rstrip('/')}/documents/{quote(serial, safe='')}.pdf"

    # ------------------------------------------------------------------ integrity

def open_archive(settings: Settings, engine: Engine | None = None, *,
                 prepare_bucket: bool = True) -> Archive:
    """An Archive on the configured database and document store (S3, else the directory).

    ``prepare_bucket`` creates or checks the bucket now; flows pass False so that a run
    touches the store only when it archives (``up`` prepares the bucket).
    """
    from brokerflow.kernel.db import open_database

    store = open_store(settings)
    inputs = open_store(settings, inputs=True)
    warnings = []
    if prepare_bucket:  # without Object Lock: refused in production, a warning in development
        warnings = [w for w in (
            store.ensure_bucket(retention_years=settings.retention_years,
                                retention_mode=settings.retention_mode, strict=not settings.dev),
            inputs.ensure_bucket(retention_years=settings.inputs_retention_years,
                                 retention_mode=settings.retention_mode,
                                 strict=not settings.dev)) if w]
    archive = Archive(engine=engine or open_database(settings.database_url), store=store,
                      settings=settings, inputs=inputs)
    archive.store_warnings = warnings
    return archive


