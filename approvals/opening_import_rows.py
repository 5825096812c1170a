"""Reading an opening import file (SPEC §10), before the database sees it.  Pure: no database.

``read_attributions`` and ``read_state`` check every row of a branch's existing attributions
or its opening carried state and report every problem at once (one ``BadInput`` naming file,
row and column; ``refusal``).  A client's ID number is only ever held long enough to validate
and hash it: rows keep its keyed hash and last four characters.  A client given without an ID
number is known by a keyed hash of its account number (``account:<client_id>``).
``approvals.opening_import`` compares the rows with the database and records them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.cells import choice_text, day_text, month_text
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.glyphs import Coverage, code_point, missing_characters
from brokerflow.kernel.idnumbers import InvalidIdNumber, keyed_hash, validate_id_number
from brokerflow.kernel.input_columns import ATTRIBUTION_IMPORT, LEVEL_WORDS, OPENING_STATE
from brokerflow.kernel.ordering import natural_key
from brokerflow.kernel.tables import open_table

MAX_LISTED = 50  # problems named in one message; the rest are counted
_MONEY = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
_COUNT = re.compile(r"[0-9]{1,6}")


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


def in_natural_order(rows: Iterable[Any]) -> list[Any]:
    """Rows as documents list them: by CM, then account, ids in natural order."""
    return sorted(rows, key=lambda r: (natural_key(r.cm_id),
                                       natural_key(getattr(r, "client_id", "")), r.row))


def count_per_cm(rows: Iterable[Any]) -> list[tuple[str, int]]:
    """(CM, rows of the CM) in natural order of the CM."""
    counts = Counter(r.cm_id for r in rows)
    return sorted(counts.items(), key=lambda item: natural_key(item[0]))
