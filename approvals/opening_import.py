"""Opening data of a branch going live (SPEC §10): its existing effective attributions, or its
opening carried state, imported once as one batch that the trading dept manager reviews and the
branch manager approves (``flows.opening_import``).

Reading a file (``read_attributions``, ``read_state``) checks every row and reports every
problem at once (one ``BadInput`` naming file, row and column); ``conflicts`` compares the rows
with the database (an account or client with a live attribution, a CM with carried state, a
branch already closed), row by row; ``apply_import`` records an approved batch after checking
the conflicts again.  A client's ID number is only ever held long enough to validate and hash
it: rows keep its keyed hash and last four characters.  A client imported without an ID number
is known by a keyed hash of its account number (``account:<client_id>``), so a later claim on
the same person by ID number does not match it: give the ID number where the branch has it.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, or_, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.glyphs import Coverage, code_point, missing_characters
from brokerflow.kernel.idnumbers import InvalidIdNumber, keyed_hash, validate_id_number
from brokerflow.kernel.input_columns import ATTRIBUTION_IMPORT, LEVEL_WORDS, OPENING_STATE
from brokerflow.kernel.models import (
    Attribution,
    ClientIdentity,
    PayrollCarry,
    PayrollRun,
    TitleRecord,
    User,
    UserRole,
)
from brokerflow.kernel.opening_models import OpeningCarry, OpeningImport
from brokerflow.kernel.ordering import natural_key
from brokerflow.kernel.tables import choice_text, day_text, month_text, open_table
from brokerflow.kernel.vocabulary import AttributionStatus

ATTRIBUTIONS, STATE = "attributions", "state"
KINDS = (ATTRIBUTIONS, STATE)
KIND_TITLES = {ATTRIBUTIONS: "期初客户归属导入清单", STATE: "期初结转状态导入清单"}
WAITING, APPROVED, REJECTED, RETURNED = "waiting", "approved", "rejected", "returned"
FINAL = (APPROVED, REJECTED, RETURNED)
#: Roster roles whose holders have clients of their own (the CMs a row may name).
CLIENT_ROLES = frozenset({"cm", "stationed_manager", "regional_manager", "regional_assistant"})
LIVE = (AttributionStatus.PENDING, AttributionStatus.CONFLICT, AttributionStatus.EFFECTIVE)
MAX_LISTED = 50  # problems named in one message; the rest are counted
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_COUNT = re.compile(r"[0-9]{1,6}")


def request_key(import_id: int) -> str:
    return f"opening-import:{import_id}"


def signed_key(import_id: int) -> str:
    """The subject key of the signed record (the second CNF) of a batch."""
    return f"{request_key(import_id)}:signed"


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file row, column; no row: the whole file) and what."""

    row: int | None
    column: str | None
    message: str

    def describe(self) -> str:
        where = [f"row {self.row}" if self.row is not None else "",
                 f"column {self.column}" if self.column else ""]
        prefix = ", ".join(w for w in where if w)
        return f"{prefix}: {self.message}" if prefix else self.message


def refusal(problems: Sequence[Problem], *, file: str) -> BadInput:
    """One ``BadInput`` naming every problem (the first's row and column in its fields)."""
    first = problems[0]
    if len(problems) == 1:
        return BadInput(first.message, file=file, row=first.row, column=first.column)
    listed = "; ".join(p.describe() for p in problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    if more > 0:
        listed += f"; and {more} more"
    return BadInput(f"{len(problems)} problems, nothing imported: {listed}", file=file,
                    row=first.row, column=first.column)


@dataclass(frozen=True)
class AttributionRow:
    """One existing attribution as imported (the ID number only hashed)."""

    row: int
    client_id: str
    cm_id: str
    effective_date: str  # YYYY-MM-DD
    source: str
    client_name: str
    id_hash: str
    id_last4: str  # '' when the file gave no ID number


@dataclass(frozen=True)
class StateRow:
    """One CM's opening carried state (SPEC §8.1 keys) as of the month ``as_of``."""

    row: int
    cm_id: str
    as_of: str
    excess_carry: str
    risk_fund_balance: str
    title: str | None
    ytd_absent_half_days: int
    ytd_personal_leave_days: str


# --------------------------------------------------------------------------- reading files


def _text_problem(text: str, *, limit: int, what: str) -> str | None:
    if len(text) > limit:
        return f"{what} is longer than {limit} characters"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in text):
        return f"{what} holds a control character"
    return None


def _glyph_problem(text: str, coverage: Coverage | None) -> str | None:
    missing = missing_characters(text, coverage) if coverage is not None else []
    if not missing:
        return None
    listed = ", ".join(f"'{c}' ({code_point(c)})" for c in missing)
    return f"no glyph in the document fonts (would print as an empty box): {listed}"


def read_attributions(path: Path, *, file: str, branch: str, cms: Mapping[str, str],
                      today: date, hash_key: str,
                      coverage: Coverage | None = None) -> list[AttributionRow]:
    """The file's attributions, each row checked; every problem at once (``BadInput``).

    ``cms``: the CMs of ``branch`` on the roster (id → name); ``today``: in the branch's
    zone (no effective date after it); ``coverage``: the document fonts' characters."""
    table = open_table(path, ATTRIBUTION_IMPORT, file=file)
    problems: list[Problem] = []
    rows: list[AttributionRow] = []
    accounts: dict[str, int] = {}
    persons: dict[str, int] = {}
    for number, values in table.rows:
        found = len(problems)

        def bad(column: str, message: str, number: int = number) -> None:
            problems.append(Problem(number, column, message))

        client_id = table.cell(values, "client_id").strip()
        if not client_id:
            bad("client_id", "the account number (资金账号) is empty")
        elif reason := _text_problem(client_id, limit=64, what="the account number"):
            bad("client_id", reason)
        elif client_id in accounts:
            bad("client_id", f"account {client_id} repeats row {accounts[client_id]}")
        else:
            accounts[client_id] = number
        cm_id = table.cell(values, "cm_id").strip()
        if not cm_id:
            bad("cm_id", "the CM (客户经理工号) is empty")
        elif cm_id not in cms:
            bad("cm_id", f"{cm_id!r} is not a CM of branch {branch} on the roster")
        raw_day = table.cell(values, "effective_date")
        day = day_text(raw_day)
        if day is None:
            bad("effective_date", f"{raw_day.strip()!r} is not a date (YYYY-MM-DD)")
        elif date.fromisoformat(day) > today:
            bad("effective_date", f"{day} is in the future (today is {today.isoformat()})")
        source = table.cell(values, "source").strip()
        if not source:
            bad("source", "say where the attribution is recorded (依据), e.g. the paper form")
        elif reason := (_text_problem(source, limit=200, what="the source")
                        or _glyph_problem(source, coverage)):
            bad("source", reason)
        name = table.cell(values, "client_name").strip()
        if reason := (_text_problem(name, limit=128, what="the client name")
                      or _glyph_problem(name, coverage)):
            bad("client_name", reason)
        id_hash, last4 = "", ""
        raw_id = table.cell(values, "id_number")
        if raw_id.strip():
            try:
                id_number = validate_id_number(raw_id, today=today)
            except InvalidIdNumber as exc:  # the message never holds the number
                bad("id_number", f"the ID number {exc}")
            else:
                id_hash, last4 = keyed_hash(id_number, key=hash_key), id_number[-4:]
                if id_hash in persons:
                    bad("id_number", f"the same client (ID number …{last4}) as row "
                                     f"{persons[id_hash]}: a client belongs to one CM")
                else:
                    persons[id_hash] = number
        if len(problems) == found and day is not None:
            rows.append(AttributionRow(
                row=number, client_id=client_id, cm_id=cm_id, effective_date=day,
                source=source, client_name=name,
                id_hash=id_hash or keyed_hash(f"account:{client_id}", key=hash_key),
                id_last4=last4))
    if not problems and not rows:
        problems.append(Problem(None, None, "the file has no data rows"))
    if problems:
        raise refusal(problems, file=table.file)
    return rows


def _money(text: str, column: str, problems: list[Problem], number: int) -> str:
    value = text.strip().replace(",", "") or "0"
    if not _MONEY.fullmatch(value):
        problems.append(Problem(number, column, f"{text.strip()!r} must be an amount ≥ 0 "
                                                "with at most two decimals"))
        return "0.00"
    return f"{Decimal(value):.2f}"


def read_state(path: Path, *, file: str, branch: str, cms: Mapping[str, str],
               today: date) -> list[StateRow]:
    """The file's opening carried state, each row checked; every problem at once."""
    table = open_table(path, OPENING_STATE, file=file)
    problems: list[Problem] = []
    rows: list[StateRow] = []
    seen: dict[str, int] = {}
    current = Month(today.year, today.month)
    for number, values in table.rows:
        found = len(problems)
        cm_id = table.cell(values, "cm_id").strip()
        if not cm_id:
            problems.append(Problem(number, "cm_id", "the CM (工号) is empty"))
        elif cm_id not in cms:
            problems.append(Problem(number, "cm_id",
                                    f"{cm_id!r} is not a CM of branch {branch} on the roster"))
        elif cm_id in seen:
            problems.append(Problem(number, "cm_id", f"CM {cm_id} repeats row {seen[cm_id]}"))
        else:
            seen[cm_id] = number
        raw_month = table.cell(values, "as_of")
        as_of = month_text(raw_month)
        if as_of is None:
            problems.append(Problem(number, "as_of",
                                    f"{raw_month.strip()!r} is not a month (YYYY-MM)"))
        elif Month.parse(as_of) >= current:
            problems.append(Problem(number, "as_of", f"{as_of} is not over yet: give the last "
                                                     "month closed before brokerflow"))
        excess = _money(table.cell(values, "excess_carry"), "excess_carry", problems, number)
        balance = _money(table.cell(values, "risk_fund_balance"), "risk_fund_balance",
                         problems, number)
        leave = _money(table.cell(values, "ytd_personal_leave_days"),
                       "ytd_personal_leave_days", problems, number)
        raw_half = table.cell(values, "ytd_absent_half_days").strip() or "0"
        if not _COUNT.fullmatch(raw_half):
            problems.append(Problem(number, "ytd_absent_half_days",
                                    f"{raw_half!r} must be a whole number ≥ 0 (half days)"))
        raw_title = table.cell(values, "title").strip()
        chosen = choice_text(raw_title, LEVEL_WORDS) if raw_title else None
        title = str(chosen) if chosen is not None else None
        if raw_title and title is None:
            problems.append(Problem(number, "title", f"{raw_title!r} is not a level; one of "
                                    + ", ".join(f"{k} ({v[0]})" for k, v in
                                                LEVEL_WORDS.items())))
        if len(problems) == found and as_of is not None:
            rows.append(StateRow(row=number, cm_id=cm_id, as_of=as_of, excess_carry=excess,
                                 risk_fund_balance=balance, title=title,
                                 ytd_absent_half_days=int(raw_half),
                                 ytd_personal_leave_days=leave))
    if not problems and not rows:
        problems.append(Problem(None, None, "the file has no data rows"))
    if problems:
        raise refusal(problems, file=table.file)
    return rows


# --------------------------------------------------------------------------- rows as stored


def rows_json(rows: Sequence[AttributionRow] | Sequence[StateRow]) -> str:
    """Rows as ``OpeningImport.rows`` keeps them (no clear ID number is in a row)."""
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False)


def stored_rows(batch: OpeningImport) -> list[AttributionRow] | list[StateRow]:
    data = json.loads(batch.rows)
    if batch.kind == ATTRIBUTIONS:
        return [AttributionRow(**r) for r in data]
    return [StateRow(**r) for r in data]


def in_natural_order(rows: Iterable[Any]) -> list[Any]:
    """Rows as documents list them: by CM, then account, ids in natural order."""
    return sorted(rows, key=lambda r: (natural_key(r.cm_id),
                                       natural_key(getattr(r, "client_id", "")), r.row))


def count_per_cm(rows: Iterable[Any]) -> list[tuple[str, int]]:
    """(CM, rows of the CM) in natural order of the CM."""
    counts = Counter(r.cm_id for r in rows)
    return sorted(counts.items(), key=lambda item: natural_key(item[0]))


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
    found: dict[str, str] = {}
    for user, _role in session.exec(
            select(User, UserRole).join(UserRole, UserRole.user_id == User.user_id)  # type: ignore[arg-type]
            .where(User.branch == branch, col(UserRole.role).in_(CLIENT_ROLES))):
        if user.left_on is None or user.left_on > today:
            found[user.user_id] = user.name
    return found


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
