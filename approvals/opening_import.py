"""Opening data of a branch going live (SPEC §10): its existing effective attributions, or its
opening carried state, imported once as one batch that the trading dept manager reviews and the
branch manager approves (``flows.opening_import``).  The database side of an import.

The file's rows are read and checked by ``approvals.opening_import_rows``; ``conflicts``
compares them with the database (an account or client with a live attribution, a CM with
carried state, a branch already closed), row by row; ``apply_import`` records an approved batch
after checking the conflicts again.  A client imported without an ID number is known by a
keyed hash of its account number (``account:<client_id>``), so a later claim on the same person
by ID number does not match it: give the ID number where the branch has it.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, or_, select

from brokerflow.approvals.opening_import_rows import (
    AttributionRow,
    Problem,
    StateRow,
    count_per_cm,
    refusal,
    rows_json,
)
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.models import (
    Attribution,
    ClientIdentity,
    PayrollCarry,
    PayrollRun,
    TitleRecord,
    User,
)
from brokerflow.kernel.opening_models import OpeningCarry, OpeningImport
from brokerflow.kernel.roster import branch_staff
from brokerflow.kernel.vocabulary import AttributionStatus

ATTRIBUTIONS, STATE = "attributions", "state"
KINDS = (ATTRIBUTIONS, STATE)
KIND_TITLES = {ATTRIBUTIONS: "期初客户归属导入清单", STATE: "期初结转状态导入清单"}
WAITING, APPROVED, REJECTED, RETURNED = "waiting", "approved", "rejected", "returned"
FINAL = (APPROVED, REJECTED, RETURNED)
#: Roster roles whose holders have clients of their own (the CMs a row may name).
CLIENT_ROLES = frozenset({"cm", "stationed_manager", "regional_manager", "regional_assistant"})
LIVE = (AttributionStatus.PENDING, AttributionStatus.CONFLICT, AttributionStatus.EFFECTIVE)


def request_key(import_id: int) -> str:
    return f"opening-import:{import_id}"


def signed_key(import_id: int) -> str:
    """The subject key of the signed record (the second CNF) of a batch."""
    return f"{request_key(import_id)}:signed"


def stored_rows(batch: OpeningImport) -> list[AttributionRow] | list[StateRow]:
    data = json.loads(batch.rows)
    if batch.kind == ATTRIBUTIONS:
        return [AttributionRow(**r) for r in data]
    return [StateRow(**r) for r in data]


def batch_headline(batch: OpeningImport) -> str:
    """``期初客户归属导入清单 SZ01（3 户）``: what a batch is, as subjects and run names say."""
    unit = "户" if batch.kind == ATTRIBUTIONS else "人"
    return f"{KIND_TITLES.get(batch.kind, batch.kind)} {batch.branch}（{batch.row_count} {unit}）"


def batch_summary(batch: OpeningImport, rows: Sequence[Any], names: Mapping[str, str]) -> str:
    """What a signer reads about a batch (pure): number, file, per-CM counts, the list."""
    unit = "户" if batch.kind == ATTRIBUTIONS else "人"
    per_cm = "，".join(f"{names.get(cm, cm)}（{cm}）{n} {unit}" if batch.kind == ATTRIBUTIONS
                      else f"{names.get(cm, cm)}（{cm}）" for cm, n in count_per_cm(rows))
    return (f"导入批次 #{batch.id}：{batch_headline(batch)}；文件 {batch.file_name}"
            f"（SHA-256 {batch.sha256[:12]}…）；提交人 {batch.submitted_by}；{per_cm}；"
            f"清单 {batch.list_serial or '（归档中）'}")


# --------------------------------------------------------------------------- the database


def branch_cms(session: Session, *, branch: str, today: date) -> dict[str, str]:
    """The branch's staff with clients of their own on the roster today (id → name)."""
    return branch_staff(session, branch=branch, roles=CLIENT_ROLES, on=today)


def _chunks(rows: Sequence[AttributionRow], size: int = 500) -> Iterator[Sequence[AttributionRow]]:
    """``rows`` in parts small enough for one query's parameters."""
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _waiting_batches(session: Session, *, branch: str, kind: str,
                     exclude: int | None) -> list[OpeningImport]:
    return [b for b in session.exec(select(OpeningImport).where(
        OpeningImport.branch == branch, OpeningImport.kind == kind,
        OpeningImport.status == WAITING).order_by(col(OpeningImport.id))) if b.id != exclude]


def conflicts(session: Session, *, branch: str, rows: Sequence[AttributionRow] | Sequence[StateRow],
              exclude_import: int | None = None) -> list[Problem]:
    """Rows the database already contradicts, each named (empty: none).  ``exclude_import``:
    the batch being applied (its own rows are not a conflict)."""
    if not rows:
        return []
    if isinstance(rows[0], AttributionRow):
        return _attribution_conflicts(session, branch=branch, rows=rows,  # type: ignore[arg-type]
                                      exclude=exclude_import)
    return _state_conflicts(session, branch=branch, rows=rows,  # type: ignore[arg-type]
                            exclude=exclude_import)


def _attribution_conflicts(session: Session, *, branch: str, rows: Sequence[AttributionRow],
                           exclude: int | None) -> list[Problem]:
    by_account: dict[str | None, Attribution] = {}
    by_person: dict[str, Attribution] = {}
    owners: dict[str | None, str] = {}
    for part in _chunks(rows):
        accounts = [r.client_id for r in part]
        for a in session.exec(select(Attribution).where(
                col(Attribution.status).in_(LIVE),
                or_(col(Attribution.client_id).in_(accounts),
                    col(Attribution.id_hash).in_([r.id_hash for r in part])))
                .order_by(col(Attribution.id))):
            by_account.setdefault(a.client_id, a)
            by_person.setdefault(a.id_hash, a)
        owners |= {i.client_id: i.id_hash for i in session.exec(select(ClientIdentity).where(
            col(ClientIdentity.client_id).in_(accounts)))}
    waiting: dict[str, int] = {}
    for batch in _waiting_batches(session, branch=branch, kind=ATTRIBUTIONS, exclude=exclude):
        for other in stored_rows(batch):
            assert isinstance(other, AttributionRow) and batch.id is not None
            waiting.setdefault(other.client_id, batch.id)
            waiting.setdefault(other.id_hash, batch.id)
    problems = []
    for r in rows:
        held = by_account.get(r.client_id) or by_person.get(r.id_hash)
        if held is not None:
            what = (f"account {r.client_id}" if held.client_id == r.client_id
                    else f"this client (ID number …{r.id_last4})")
            problems.append(Problem(r.row, "client_id" if held.client_id == r.client_id
                                    else "id_number",
                                    f"{what} already has a {held.status} attribution to "
                                    f"{held.cm_id} (#{held.id}, branch {held.branch})"))
        elif r.client_id in owners and owners[r.client_id] != r.id_hash:
            problems.append(Problem(r.row, "client_id", f"account {r.client_id} is recorded "
                                                        "for another client"))
        elif r.client_id in waiting or r.id_hash in waiting:
            batch_id = waiting.get(r.client_id) or waiting[r.id_hash]
            problems.append(Problem(r.row, "client_id", f"account {r.client_id} is in import "
                                    f"batch #{batch_id}, waiting for its signatures"))
    return problems


def _state_conflicts(session: Session, *, branch: str, rows: Sequence[StateRow],
                     exclude: int | None) -> list[Problem]:
    closed = session.exec(select(PayrollRun.month).where(PayrollRun.branch == branch)
                          .order_by(col(PayrollRun.month))).first()
    if closed is not None:
        return [Problem(None, None, f"branch {branch} has a closing already ({closed}): "
                                    "opening state is imported only before the first closing")]
    cms = {r.cm_id for r in rows}
    carried = {c.cm_id: c.month for c in session.exec(select(PayrollCarry).where(
        PayrollCarry.branch == branch, col(PayrollCarry.cm_id).in_(cms)))}
    opened = {c.cm_id: c.import_id for c in session.exec(select(OpeningCarry).where(
        OpeningCarry.branch == branch, col(OpeningCarry.cm_id).in_(cms)))}
    titled = {t.cm_id: t for t in session.exec(select(TitleRecord).where(
        TitleRecord.branch == branch, col(TitleRecord.cm_id).in_(cms)))}
    waiting: dict[str, int] = {}
    for batch in _waiting_batches(session, branch=branch, kind=STATE, exclude=exclude):
        for other in stored_rows(batch):
            assert batch.id is not None
            waiting.setdefault(other.cm_id, batch.id)
    problems = []
    for r in rows:
        if r.cm_id in carried:
            problems.append(Problem(r.row, "cm_id", f"CM {r.cm_id} has carried state from the "
                                                    f"{carried[r.cm_id]} closing already"))
        elif r.cm_id in opened:
            problems.append(Problem(r.row, "cm_id", f"CM {r.cm_id} has opening state already "
                                                    f"(import batch #{opened[r.cm_id]})"))
        elif r.cm_id in waiting:
            problems.append(Problem(r.row, "cm_id", f"CM {r.cm_id} is in import batch "
                                    f"#{waiting[r.cm_id]}, waiting for its signatures"))
        elif r.title is not None and r.cm_id in titled:
            record = titled[r.cm_id]
            problems.append(Problem(r.row, "title", f"CM {r.cm_id} has a title on record "
                                    f"already ({record.title} from {record.effective_month})"))
    return problems


def submit_import(session: Session, *, branch: str, kind: str, file_name: str, sha256: str,
                  rows: Sequence[AttributionRow] | Sequence[StateRow],
                  submitted_by: str) -> OpeningImport:
    """Record a checked batch, waiting for its chain (audited); ``BadInput`` naming every
    row the database contradicts, nothing written."""
    problems = conflicts(session, branch=branch, rows=rows)
    if problems:
        raise refusal(problems, file=file_name)
    batch = OpeningImport(branch=branch, kind=kind, sha256=sha256, file_name=file_name[:255],
                          rows=rows_json(rows), row_count=len(rows), submitted_by=submitted_by)
    session.add(batch)
    session.flush()
    assert batch.id is not None
    append_audit(session, actor_id=submitted_by, action="opening-import-submitted",
                 request_key=request_key(batch.id),
                 details={"branch": branch, "kind": kind, "rows": len(rows),
                          "file": batch.file_name, "sha256": sha256})
    return batch


def get_import(session: Session, *, import_id: int) -> OpeningImport:
    batch = session.get(OpeningImport, import_id)
    if batch is None:
        raise NotFound(f"no opening import batch #{import_id}")
    return batch


def list_imports(session: Session, *, branch: str | None = None) -> list[OpeningImport]:
    query = select(OpeningImport)
    if branch:
        query = query.where(OpeningImport.branch == branch)
    return list(session.exec(query.order_by(col(OpeningImport.id))))


def set_import_status(session: Session, *, batch: OpeningImport, status: str,
                      note: str = "") -> None:
    batch.status = status
    batch.updated_at = utcnow()
    if status in FINAL:
        batch.decided_at = batch.updated_at
    if note:
        batch.note = note
    session.add(batch)


def effective_moment(day: str, zone: ZoneInfo) -> datetime:
    """The start of ``day`` (YYYY-MM-DD) in the branch's zone, in UTC."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)


def apply_import(session: Session, *, batch: OpeningImport, zone: ZoneInfo,
                 approved_by: Sequence[str]) -> int:
    """Record an approved batch (audited per row); the rows recorded.  The conflicts are
    checked again first: any makes it ``BadInput`` naming every row, nothing written."""
    assert batch.id is not None
    rows = stored_rows(batch)
    problems = conflicts(session, branch=batch.branch, rows=rows, exclude_import=batch.id)
    if problems:
        raise refusal(problems, file=batch.file_name)
    key = request_key(batch.id)
    for r in rows:
        if isinstance(r, AttributionRow):
            _record_attribution(session, batch=batch, row=r, zone=zone)
        else:
            _record_state(session, batch=batch, row=r, approved_by=approved_by)
    set_import_status(session, batch=batch, status=APPROVED)
    append_audit(session, actor_id="system", action="opening-import-applied", request_key=key,
                 details={"kind": batch.kind, "rows": len(rows), "list": batch.list_serial,
                          "approved_by": list(approved_by)})
    return len(rows)


def _record_attribution(session: Session, *, batch: OpeningImport, row: AttributionRow,
                        zone: ZoneInfo) -> None:
    assert batch.id is not None
    cm = session.get(User, row.cm_id)
    identity = session.get(ClientIdentity, row.id_hash)
    if identity is None:
        identity = ClientIdentity(id_hash=row.id_hash, name=row.client_name,
                                  id_last4=row.id_last4)
    identity.client_id = row.client_id
    identity.name = identity.name or row.client_name
    session.add(identity)
    session.flush()
    moment = effective_moment(row.effective_date, zone)
    attribution = Attribution(
        id_hash=row.id_hash, cm_id=row.cm_id, branch=batch.branch,
        team=cm.team if cm is not None else "", asset_size="", status=AttributionStatus.EFFECTIVE,
        client_id=row.client_id, registered_by=batch.submitted_by,
        confirmation_serial=batch.list_serial, effective_at=moment)
    session.add(attribution)
    session.flush()
    assert attribution.id is not None
    append_audit(session, actor_id="system", action="attribution-imported",
                 request_key=f"attribution:{attribution.id}",
                 details={"cm": row.cm_id, "client_id": row.client_id,
                          "effective_date": row.effective_date, "source": row.source,
                          "client": f"…{row.id_last4}" if row.id_last4 else "",
                          "import": batch.id, "list": batch.list_serial, "row": row.row})


def _record_state(session: Session, *, batch: OpeningImport, row: StateRow,
                  approved_by: Sequence[str]) -> None:
    assert batch.id is not None
    session.add(OpeningCarry(
        branch=batch.branch, cm_id=row.cm_id, as_of=row.as_of, excess_carry=row.excess_carry,
        risk_fund_balance=row.risk_fund_balance, title=row.title,
        ytd_absent_half_days=row.ytd_absent_half_days,
        ytd_personal_leave_days=row.ytd_personal_leave_days, import_id=batch.id))
    effective = str(Month.parse(row.as_of).minus(-1)) if row.title else ""
    if row.title:
        session.add(TitleRecord(branch=batch.branch, cm_id=row.cm_id, title=row.title,
                                effective_month=effective, kind="opening",
                                approved_by=";".join(approved_by)[:256],
                                document=batch.list_serial, request_key=request_key(batch.id)))
    append_audit(session, actor_id="system", action="opening-state-imported",
                 request_key=request_key(batch.id),
                 details={"cm": row.cm_id, "as_of": row.as_of, "excess_carry": row.excess_carry,
                          "risk_fund_balance": row.risk_fund_balance, "title": row.title,
                          "title_from": effective,
                          "ytd_absent_half_days": row.ytd_absent_half_days,
                          "ytd_personal_leave_days": row.ytd_personal_leave_days,
                          "list": batch.list_serial, "row": row.row})


def import_record(batch: OpeningImport) -> dict[str, object]:
    """A batch as the command line lists it."""
    return {"id": batch.id, "branch": batch.branch, "kind": batch.kind, "status": batch.status,
            "rows": batch.row_count, "file": batch.file_name, "sha256": batch.sha256,
            "submitted_by": batch.submitted_by, "list_serial": batch.list_serial,
            "record_serial": batch.record_serial, "note": batch.note,
            "flow_run_id": batch.flow_run_id, "created_at": batch.created_at.isoformat(),
            "decided_at": batch.decided_at.isoformat() if batch.decided_at else None}
