"""The CRM export (SPEC §6.2): ``staff.csv``, ``clients.csv`` (or ``.xlsx``) and ``state.json``.

Every value is checked where it is read; the first problem raises ``BadInput`` naming the
file, the row (the header is row 1) and the column.  Client rows are streamed: callers fold
them into per-CM figures instead of keeping three months of clients in memory.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
from brokerflow.payroll.policy import LEVELS

STAFF_COLUMNS = (
    "month", "cm_id", "name", "position", "supervisor_id", "site", "hire_date", "qualified",
    "late_count", "personal_leave_days", "sick_leave_days", "absent_half_days",
    "no_event_count", "meeting_missed_count", "report_late_count", "dress_count",
    "off_post_count", "complaint_count", "fines", "mainly_ipo_or_fund",
)
#: Optional staff columns (SPEC §6.2, §8.1): an absent column or an empty cell is false/0.
STAFF_OPTIONAL_COLUMNS = ("under_investigation", "confirmed_malicious_accounts", "leave_date")
CLIENT_COLUMNS = (
    "month", "client_id", "client_type", "cm_id", "open_date", "attribution_effective",
    "malicious", "purchases", "assets", "turnover", "gross_commission", "fund_sales_commission",
)
POSITIONS = ("cm", "stationed", "regional")
MAX_AMOUNT = Decimal(10) ** 15  # a figure beyond this is an error, not a client
MAX_TEXT_LENGTH = 256  # ids, names, sites
MAX_ID_LENGTH = 64
MAX_COUNT_DIGITS = 6
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CLIENT_TYPES = ("individual", "institution")


@dataclass(frozen=True, slots=True)
class StaffRow:
    row: int
    month: str
    cm_id: str
    name: str
    position: str
    supervisor_id: str
    site: str
    hire_date: date
    qualified: bool
    late_count: int
    personal_leave_days: Decimal
    sick_leave_days: Decimal
    absent_half_days: int
    no_event_count: int
    meeting_missed_count: int
    report_late_count: int
    dress_count: int
    off_post_count: int
    complaint_count: int
    fines: Decimal
    mainly_ipo_or_fund: bool
    under_investigation: bool = False
    confirmed_malicious_accounts: int = 0
    leave_date: date | None = None  # SPEC §8.3: the last day of a CM who left


class ClientRow(NamedTuple):
    row: int
    month: str
    client_id: str
    client_type: str
    cm_id: str
    open_date: date
    attribution_effective: bool
    malicious: bool
    purchases: Decimal
    assets: Decimal
    turnover: Decimal
    gross_commission: Decimal
    fund_sales_commission: Decimal


@dataclass(frozen=True)
class CarriedState:
    """What a CM carries into a month (SPEC §6.2, §8.1); absent keys mean none/0.

    ``as_of`` None means the month before (a hand-made state); ``source`` is the entry as
    read, so that a CM without a staff row is carried on unchanged."""

    excess_carry: Decimal = Decimal("0")
    risk_fund_balance: Decimal = Decimal("0")
    as_of: str | None = None
    title: str | None = None
    prev_asset_level: str | None = None
    prev_score: Decimal | None = None
    ytd_absent_half_days: int = 0
    ytd_personal_leave_days: Decimal = Decimal("0")
    withheld_fixed_pay: Decimal = Decimal("0")
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class _Cells:
    """Typed access to one data row, raising BadInput that names file, row and column."""

    __slots__ = ("file", "row", "values", "index")

    def __init__(self, file: str, row: int, values: list[str], index: dict[str, int]) -> None:
        self.file, self.row, self.values, self.index = file, row, values, index

    def bad(self, column: str, problem: str) -> BadInput:
        return BadInput(problem, file=self.file, row=self.row, column=column)

    def text(self, column: str, *, required: bool = True) -> str:
        value = self.values[self.index[column]].strip()
        if required and not value:
            raise self.bad(column, "is empty")
        if len(value) > MAX_TEXT_LENGTH:
            raise self.bad(column, f"is longer than {MAX_TEXT_LENGTH} characters")
        if CONTROL_CHARACTER.search(value):
            raise self.bad(column, "contains a control character (e.g. NUL or a line break)")
        return value

    def money(self, column: str) -> Decimal:
        value = self.decimal(column)
        if value < 0:
            raise self.bad(column, f"negative amount {value}")
        return value

    def decimal(self, column: str) -> Decimal:
        raw = self.text(column)
        if not raw.isascii():
            raise self.bad(column, f"not a number in ASCII digits: {raw!r}")
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise self.bad(column, f"not a number: {raw!r}") from None
        if not value.is_finite():
            raise self.bad(column, f"not a finite number: {raw!r}")
        if abs(value) > MAX_AMOUNT:
            raise self.bad(column, f"out of range (at most {MAX_AMOUNT:,}): {raw!r}")
        return value

    def count(self, column: str) -> int:
        raw = self.text(column)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_COUNT_DIGITS:
            raise self.bad(column, f"not a whole number 0-{10 ** MAX_COUNT_DIGITS - 1} in "
                                   f"ASCII digits: {raw!r}")
        return int(raw)

    def identifier(self, column: str, *, required: bool = True) -> str:
        value = self.text(column, required=required)
        if len(value) > MAX_ID_LENGTH:
            raise self.bad(column, f"is longer than {MAX_ID_LENGTH} characters")
        return value

    def optional_flag(self, column: str) -> bool:
        """An optional column's flag: false when the column or the cell is empty."""
        if column not in self.index or not self.values[self.index[column]].strip():
            return False
        return self.flag(column)

    def optional_count(self, column: str) -> int:
        """An optional column's count: 0 when the column or the cell is empty."""
        if column not in self.index or not self.values[self.index[column]].strip():
            return 0
        return self.count(column)

    def optional_day(self, column: str) -> date | None:
        """An optional column's date: None when the column or the cell is empty."""
        if column not in self.index or not self.values[self.index[column]].strip():
            return None
        return self.day(column)

    def flag(self, column: str) -> bool:
        raw = self.text(column).lower()
        if raw not in ("true", "false"):
            raise self.bad(column, f"must be true or false, not {raw!r}")
        return raw == "true"

    def day(self, column: str) -> date:
        raw = self.text(column)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise self.bad(column, f"not a date (YYYY-MM-DD): {raw!r}") from None

    def month(self, column: str = "month") -> str:
        raw = self.text(column)
        try:
            return str(Month.parse(raw))
        except ValueError:
            raise self.bad(column, f"not a month (YYYY-MM): {raw!r}") from None


def _table(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
           ) -> tuple[str, dict[str, int], Iterator[tuple[int, list[str]]]]:
    """(file name, column index, numbered data rows) of a CSV or XLSX file with exactly
    ``columns`` and any of ``optional``; the header is checked before any row is read."""
    file = str(path)
    if not path.is_file():
        raise BadInput("no such file", file=file)
    source = _xlsx_rows(path) if path.suffix.lower() == ".xlsx" else _csv_rows(path)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(source)]
    except StopIteration:
        raise BadInput("the file is empty; expected a header line", file=file, row=1) from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise BadInput(f"missing column {missing[0]}", file=file, row=1, column=missing[0])
    extra = [c for c in header if c not in columns and c not in optional]
    if extra:
        raise BadInput(f"unexpected column {extra[0]!r}", file=file, row=1, column=extra[0])
    if len(set(header)) != len(header):
        duplicate = next(c for c in header if header.count(c) > 1)
        raise BadInput(f"column {duplicate} appears twice", file=file, row=1, column=duplicate)
    index = {name: header.index(name) for name in columns + optional if name in header}
    width = len(header)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(source, start=2):
            if len(values) != width:
                if not any(v.strip() for v in values):
                    continue
                raise BadInput(f"expected {width} fields, found {len(values)}", file=file,
                               row=number)
            yield number, values

    return file, index, rows()


def _rows(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
          ) -> Iterator[_Cells]:
    """Cells of each data row, for typed access with exact error messages."""
    file, index, rows = _table(path, columns, optional)
    for number, values in rows:
        yield _Cells(file, number, values, index)


def _csv_rows(path: Path) -> Iterator[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            yield from reader
        except UnicodeDecodeError:
            raise BadInput("not UTF-8 text", file=str(path), row=reader.line_num + 1) from None
        except csv.Error as exc:  # e.g. a field over the size limit, a NUL byte
            raise BadInput(f"not readable as CSV: {exc}", file=str(path),
                           row=reader.line_num) from None


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise BadInput(f"not an .xlsx workbook ({exc.__class__.__name__})",
                       file=str(path)) from None
    try:
        sheet = workbook.worksheets[0]
        for cells in sheet.iter_rows(values_only=True):
            yield [_xlsx_text(v) for v in cells]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadInput(f"not a readable .xlsx workbook ({exc.__class__.__name__})",
                       file=str(path)) from None
    finally:
        workbook.close()


def _xlsx_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "date") and callable(value.date):
        return value.date().isoformat()
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips; parsed as Decimal, never float
    return str(value)


def read_staff(path: Path) -> list[StaffRow]:
    """Every row of the staff file, typed and checked."""
    rows = []
    for c in _rows(path, STAFF_COLUMNS, STAFF_OPTIONAL_COLUMNS):
        position = c.text("position")
        if position not in POSITIONS:
            raise c.bad("position", f"unknown position {position!r}; one of "
                        f"{', '.join(POSITIONS)}")
        hired, left = c.day("hire_date"), c.optional_day("leave_date")
        if left is not None and left < hired:
            raise c.bad("leave_date", f"{left} is before the hire date {hired}")
        rows.append(StaffRow(
            row=c.row, month=c.month(), cm_id=c.identifier("cm_id"), name=c.text("name"),
            position=position, supervisor_id=c.identifier("supervisor_id", required=False),
            site=c.text("site", required=False), hire_date=hired,
            qualified=c.flag("qualified"), late_count=c.count("late_count"),
            personal_leave_days=c.money("personal_leave_days"),
            sick_leave_days=c.money("sick_leave_days"),
            absent_half_days=c.count("absent_half_days"),
            no_event_count=c.count("no_event_count"),
            meeting_missed_count=c.count("meeting_missed_count"),
            report_late_count=c.count("report_late_count"), dress_count=c.count("dress_count"),
            off_post_count=c.count("off_post_count"), complaint_count=c.count("complaint_count"),
            fines=c.money("fines"), mainly_ipo_or_fund=c.flag("mainly_ipo_or_fund"),
            under_investigation=c.optional_flag("under_investigation"),
            confirmed_malicious_accounts=c.optional_count("confirmed_malicious_accounts"),
            leave_date=left,
        ))
    return rows


def _client_row(c: _Cells) -> ClientRow:
    """A client row through the checked path: exact messages for every problem."""
    client_type = c.text("client_type")
    if client_type not in CLIENT_TYPES:
        raise c.bad("client_type", f"unknown client type {client_type!r}; one of "
                    f"{', '.join(CLIENT_TYPES)}")
    return ClientRow(
        row=c.row, month=c.month(), client_id=c.identifier("client_id"),
        client_type=client_type, cm_id=c.identifier("cm_id"), open_date=c.day("open_date"),
        attribution_effective=c.flag("attribution_effective"), malicious=c.flag("malicious"),
        purchases=c.money("purchases"), assets=c.money("assets"),
        turnover=c.money("turnover"), gross_commission=c.money("gross_commission"),
        fund_sales_commission=c.money("fund_sales_commission"),
    )


def iter_clients(path: Path, *, on_row: Callable[[int], None] | None = None,
                 every: int = 100_000) -> Iterator[ClientRow]:
    """Client rows, typed and checked, one at a time; ``on_row(n)`` every ``every`` rows.

    Three million rows make this the hot loop: well-formed rows take a fast path, and any
    row it cannot take whole goes through ``_client_row``, which names the problem.
    """
    file, index, rows = _table(path, CLIENT_COLUMNS)
    (i_month, i_id, i_type, i_cm, i_open, i_eff, i_mal, i_pur, i_ass, i_turn, i_gross,
     i_fund) = (index[c] for c in CLIENT_COLUMNS)
    months: dict[str, str] = {}
    flags = {"true": True, "false": False}
    types = {t: t for t in CLIENT_TYPES}
    number_of = Decimal
    zero, limit = Decimal(0), MAX_AMOUNT  # NaN and Infinity fail the comparison too
    control = CONTROL_CHARACTER.search
    day = date.fromisoformat
    for number, v in rows:
        if on_row is not None and number % every == 0:
            on_row(number)
        try:
            client_id, cm_id = v[i_id], v[i_cm]
            purchases, assets, turnover = (number_of(v[i_pur]), number_of(v[i_ass]),
                                           number_of(v[i_turn]))
            gross, fund = number_of(v[i_gross]), number_of(v[i_fund])
            figures = v[i_pur] + v[i_ass] + v[i_turn] + v[i_gross] + v[i_fund]
            if not (client_id and cm_id and client_id == client_id.strip()
                    and cm_id == cm_id.strip() and len(client_id) <= MAX_ID_LENGTH
                    and len(cm_id) <= MAX_ID_LENGTH and not control(client_id + cm_id)
                    and figures.isascii() and purchases >= zero and assets >= zero
                    and turnover >= zero and gross >= zero and fund >= zero
                    and purchases + assets + turnover + gross + fund <= limit):
                raise ValueError
            yield ClientRow(number, months[v[i_month]], client_id, types[v[i_type]], cm_id,
                            day(v[i_open]), flags[v[i_eff]], flags[v[i_mal]], purchases,
                            assets, turnover, gross, fund)
        except (ValueError, KeyError, ArithmeticError):
            row = _client_row(_Cells(file, number, v, index))
            months[v[i_month]] = row.month  # the next rows of this month take the fast path
            yield row


def read_state(path: Path) -> dict[str, CarriedState]:
    """Opening carried state per CM; an absent file means nothing carried."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInput("not UTF-8 text", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg}", file=str(path), row=exc.lineno,
                       column=str(exc.colno)) from None
    if not isinstance(data, dict):
        raise BadInput("expected an object keyed by CM id", file=str(path))
    return {cm_id: parse_state_entry(cm_id, entry, file=str(path))
            for cm_id, entry in data.items()}


STATE_DECIMALS = ("excess_carry", "risk_fund_balance", "prev_score", "ytd_personal_leave_days",
                  "withheld_fixed_pay")
STATE_LEVELS = ("title", "prev_asset_level")
STATE_COUNTS = ("ytd_absent_half_days",)
STATE_KEYS = ("as_of", *STATE_DECIMALS, *STATE_LEVELS, *STATE_COUNTS)


def parse_state_entry(cm_id: str, entry: Any, *, file: str) -> CarriedState:
    """One CM's carried state (SPEC §8.1 types); BadInput naming the CM and key else."""
    if not isinstance(entry, dict):
        raise BadInput(f"{cm_id}: expected an object", file=file, column=cm_id)

    def bad(key: str, problem: str) -> BadInput:
        return BadInput(f"{cm_id}.{key} {problem}", file=file, column=f"{cm_id}.{key}")

    unknown = sorted(set(entry) - set(STATE_KEYS))
    if unknown:
        raise bad(unknown[0], f"is not a state key (known: {', '.join(STATE_KEYS)})")
    values: dict[str, Any] = {"source": entry}
    for key in STATE_DECIMALS:
        raw = entry.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise bad(key, f"must be a decimal string, not {raw!r}")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise bad(key, f"is not a number: {raw!r}") from None
        if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
            raise bad(key, f"must be a number from 0 to {MAX_AMOUNT:,}: {raw!r}")
        values[key] = value
    for key in STATE_LEVELS:
        raw = entry.get(key)
        if raw is None:
            continue
        if raw not in LEVELS:
            raise bad(key, f"is not a level: {raw!r}; levels are {', '.join(LEVELS)}")
        values[key] = raw
    for key in STATE_COUNTS:
        raw = entry.get(key)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.isascii() and raw.isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10 ** 6:
            raise bad(key, f"must be a whole number 0-999999, not {raw!r}")
        values[key] = raw
    as_of = entry.get("as_of")
    if as_of is not None:
        try:
            values["as_of"] = str(Month.parse(as_of if isinstance(as_of, str) else ""))
        except ValueError:
            raise bad("as_of", f"is not a month (YYYY-MM): {as_of!r}") from None
    return CarriedState(**values)
