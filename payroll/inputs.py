"""The CRM export (SPEC §6.2): ``staff.csv`` and ``clients.csv`` (or ``.xlsx``); its
``state.json`` is read by ``payroll.state_file``.

The tables are read the way spreadsheets make them (``kernel.tables``; their columns are
``kernel.input_columns.STAFF`` and ``CLIENTS``): UTF-8 or GBK, English or Chinese headers,
是/否 and Chinese enumeration words, months a spreadsheet turned into dates, dates written
2026/10/5, amounts shown with thousands separators (12,000.00).  Every value is checked where
it is read; the problems of all rows are reported together in one ``BadInput`` naming the file
and each row (the header is row 1) and column (``kernel.tables.RowProblems``).  Client rows
are streamed: callers fold them into per-CM figures instead of keeping three months of clients
in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from brokerflow.kernel import input_columns
from brokerflow.kernel.calendar import Month
from brokerflow.kernel.cells import (
    FLAG_WORDS,
    RowProblems,
    choice_text,
    day_text,
    flag_text,
    month_text,
    plain_number_text,
)
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.tables import Column, open_table

STAFF_COLUMNS = tuple(c.name for c in input_columns.STAFF if c.required)
#: Optional staff columns (SPEC §6.2, §8.1): an absent column or an empty cell is false/0.
STAFF_OPTIONAL_COLUMNS = tuple(c.name for c in input_columns.STAFF if not c.required)
CLIENT_COLUMNS = tuple(c.name for c in input_columns.CLIENTS)
POSITIONS = tuple(input_columns.POSITION_WORDS)
MAX_AMOUNT = Decimal(10) ** 15  # a figure beyond this is an error, not a client
MAX_TEXT_LENGTH = 256  # ids, names, sites
MAX_ID_LENGTH = 64
MAX_COUNT_DIGITS = 6
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CLIENT_TYPES = tuple(input_columns.CLIENT_TYPE_WORDS)


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
        raw = plain_number_text(self.text(column))  # 12,000.00 as a spreadsheet shows it
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
        raw = self.text(column)
        value = flag_text(raw)
        if value is None:
            raise self.bad(column, f"must be true or false (是 or 否), not {raw!r}")
        return value == "true"

    def day(self, column: str) -> date:
        raw = self.text(column)
        iso = day_text(raw)
        try:
            return date.fromisoformat(iso or raw)
        except ValueError:
            raise self.bad(column, f"not a date (YYYY-MM-DD or 2026/10/5): {raw!r}") from None

    def month(self, column: str = "month") -> str:
        raw = self.text(column)
        canonical = month_text(raw)
        if canonical is None:
            raise self.bad(column, f"not a month (YYYY-MM): {raw!r}")
        return str(Month.parse(canonical))

    def choice(self, column: str, choices: Mapping[str, tuple[str, ...]], what: str) -> str:
        """An enumeration cell's canonical value (English, or a Chinese word for it)."""
        raw = self.text(column)
        value = choice_text(raw, choices)
        if value is None:
            known = ", ".join(f"{v} ({'/'.join(w)})" if w else v for v, w in choices.items())
            raise self.bad(column, f"unknown {what} {raw!r}; one of {known}")
        return value


def _table(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
           ) -> tuple[str, dict[str, int], Iterator[tuple[int, list[str]]]]:
    """(file name, column index, numbered data rows) of a CSV or XLSX table whose columns
    have English headers only (``columns`` required, ``optional`` not); ``kernel.tables``
    reads it, so every header problem is reported at once."""
    table = open_table(path, [Column(name, "") for name in columns]
                       + [Column(name, "", required=False) for name in optional])
    return table.file, table.index, table.rows


def _rows(path: Path, columns: Sequence[Column]) -> Iterator[_Cells]:
    """Cells of each data row, for typed access with exact error messages."""
    table = open_table(path, columns)
    for number, values in table.rows:
        yield _Cells(table.file, number, values, table.index)


def read_staff(path: Path) -> list[StaffRow]:
    """Every row of the staff file, typed and checked; the problems of all rows are reported
    together."""
    rows = []
    problems = RowProblems(str(path))
    cells = _rows(path, input_columns.STAFF)
    while True:
        try:
            c = next(cells)
        except StopIteration:
            break
        except BadInput as unreadable:  # the table itself stops here (e.g. a row's width)
            problems.add(unreadable)
            break
        try:
            rows.append(_staff_row(c))
        except BadInput as problem:
            problems.add(problem)
    problems.raise_if_any()
    return rows


def _staff_row(c: _Cells) -> StaffRow:
    """One staff row through the checked path."""
    position = c.choice("position", input_columns.POSITION_WORDS, "position")
    hired, left = c.day("hire_date"), c.optional_day("leave_date")
    if left is not None and left < hired:
        raise c.bad("leave_date", f"{left} is before the hire date {hired}")
    return StaffRow(
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
    )


def _client_row(c: _Cells) -> ClientRow:
    """A client row through the checked path: exact messages for every problem."""
    client_type = c.choice("client_type", input_columns.CLIENT_TYPE_WORDS, "client type")
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

    Three million rows make this the hot loop: well-formed rows take a fast path (their
    words, Chinese ones too, are looked up; a month or date text seen once is remembered),
    and any row it cannot take whole goes through ``_client_row``, which names the problem.
    """
    table = open_table(path, input_columns.CLIENTS)
    file, index = table.file, table.index
    (i_month, i_id, i_type, i_cm, i_open, i_eff, i_mal, i_pur, i_ass, i_turn, i_gross,
     i_fund) = (index[c] for c in CLIENT_COLUMNS)
    months: dict[str, str] = {}
    days: dict[str, date] = {}
    flags = {form: value == "true" for word, value in FLAG_WORDS.items()
             for form in (word, word.upper(), word.capitalize())}
    types = {t: t for t in CLIENT_TYPES} | {
        word: t for t, words in input_columns.CLIENT_TYPE_WORDS.items() for word in words}
    number_of = Decimal
    zero, limit = Decimal(0), MAX_AMOUNT  # NaN and Infinity fail the comparison too
    control = CONTROL_CHARACTER.search
    day = date.fromisoformat
    problems = RowProblems(file)  # every bad row is named, once the file is read
    try:
        for number, v in table.rows:
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
                                days.get(v[i_open]) or day(v[i_open]), flags[v[i_eff]],
                                flags[v[i_mal]], purchases, assets, turnover, gross, fund)
            except (ValueError, KeyError, ArithmeticError):
                try:
                    row = _client_row(_Cells(file, number, v, index))
                except BadInput as problem:
                    problems.add(problem)
                    continue
                months[v[i_month]] = row.month  # the next rows of this month take the fast path
                days[v[i_open]] = row.open_date  # and of this date (e.g. written 2026/10/5)
                yield row
    except BadInput as unreadable:  # the table itself stops here (e.g. a row's width)
        problems.add(unreadable)
    problems.raise_if_any()
