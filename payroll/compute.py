"""Read a month's CRM export and policy, compute the payroll, format the result (SPEC §6.3)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.sheets import sheet_text
from brokerflow.payroll.inputs import (
    CarriedState,
    ClientRow,
    Month,
    StaffRow,
    iter_clients,
    read_staff,
    read_state,
)
from brokerflow.payroll.policy import Policy, load_policy
from brokerflow.payroll.rules import (
    PayLine,
    PayrollResult,
    compute_payroll,
    fold_clients,
    staff_for_month,
)

LINE_FIELDS = (
    "cm_id", "level", "valid_accounts", "new_value", "net_revenue", "avg_assets_3m",
    "mgmt_score", "score", "fixed_pay", "commission", "opening_bonus", "excess_value_award",
    "excess_carry_out", "fund_commission", "management_commission", "management_allowance",
    "transport_allowance", "attendance_deduction", "fines", "gross", "risk_fund_withheld",
    "risk_fund_balance", "net_pay", "flags",
    # SPEC §8.1, after §6.3's
    "asset_level", "title", "title_next", "fixed_pay_withheld", "fixed_pay_released",
    "malicious_fine", "withheld_fixed_pay", "ytd_absent_half_days", "ytd_personal_leave_days",
)
PROGRESS_ROWS = 100_000


def _find(data_dir: Path, stem: str) -> Path:
    for suffix in (".csv", ".xlsx"):
        path = data_dir / f"{stem}{suffix}"
        if path.exists():
            return path
    raise BadInput(f"no {stem}.csv or {stem}.xlsx in {data_dir}", file=str(data_dir / stem))


def compute_from_directory(
    *, month: str, data_dir: Path, policy: Policy | Path,
    progress: Callable[[int], None] | None = None,
    state: dict[str, CarriedState] | None = None,
    counts: Callable[[ClientRow], bool] | None = None,
    investigations: dict[str, tuple[bool, int]] | None = None,
) -> PayrollResult:
    """The payroll of ``month`` from ``DIR/staff``, ``DIR/clients`` and ``DIR/state.json``
    (or the opening ``state`` given); ``investigations`` (the database's cases: under
    investigation, accounts confirmed this month) add to the staff file's columns."""
    try:
        Month.parse(month)
    except ValueError:
        raise BadInput(f"month {month!r} must be YYYY-MM", column="--month") from None
    if not data_dir.is_dir():
        raise BadInput("no such directory", file=str(data_dir))
    rules = policy if isinstance(policy, Policy) else load_policy(policy)
    staff_path, clients_path = _find(data_dir, "staff"), _find(data_dir, "clients")
    all_staff = read_staff(staff_path)
    staff = staff_for_month(all_staff, month=month, file=str(staff_path))
    if investigations:
        staff = [_with_investigation(s, investigations.get(s.cm_id)) for s in staff]
    figures = fold_clients(
        iter_clients(clients_path, on_row=progress, every=PROGRESS_ROWS), month=month,
        policy=rules,
        staff_ids={s.cm_id for s in all_staff}, file=str(clients_path), counts=counts,
    )
    if state is None:
        state = read_state(data_dir / "state.json")
    return compute_payroll(month=month, staff=staff, figures=figures, policy=rules, state=state)


def _with_investigation(staff: StaffRow, case: tuple[bool, int] | None) -> StaffRow:
    if case is None:
        return staff
    held, confirmed = case
    return replace(staff, under_investigation=staff.under_investigation or held,
                   confirmed_malicious_accounts=staff.confirmed_malicious_accounts + confirmed)


def _text(value: Any) -> Any:
    return f"{value:.2f}" if isinstance(value, Decimal) else value


def line_json(line: PayLine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in LINE_FIELDS:
        value = getattr(line, name)
        if name == "score":
            out[name] = f"{value:.4f}"
        elif name == "flags":
            out[name] = list(value)
        else:
            out[name] = _text(value)
    return out


def next_state(result: PayrollResult, opening: dict[str, CarriedState]) -> dict[str, Any]:
    """The ``state.json`` carried into the month after ``result`` (SPEC §8.1 ``--state-out``):
    every CM of the month as computed; a CM of ``opening`` without a line, unchanged."""
    state: dict[str, Any] = {}
    for cm_id, carried in opening.items():
        state[cm_id] = dict(carried.source) if carried.source is not None else {
            "excess_carry": f"{carried.excess_carry:.2f}",
            "risk_fund_balance": f"{carried.risk_fund_balance:.2f}",
        }
    for line in result.lines:
        state[line.cm_id] = {
            "as_of": result.month,
            "excess_carry": f"{line.excess_carry_out:.2f}",
            "risk_fund_balance": f"{line.risk_fund_balance:.2f}",
            "title": line.title,
            "prev_asset_level": line.asset_level,
            "prev_score": f"{line.score:.4f}",
            "ytd_absent_half_days": line.ytd_absent_half_days,
            "ytd_personal_leave_days": f"{line.ytd_personal_leave_days:.2f}",
            "withheld_fixed_pay": f"{line.withheld_fixed_pay:.2f}",
        }
    return dict(sorted(state.items()))


def result_json(result: PayrollResult) -> dict[str, Any]:
    return {
        "month": result.month,
        "lines": [line_json(line) for line in result.lines],
        "totals": {k: f"{v:.2f}" for k, v in result.totals.items()},
    }


def result_csv(result: PayrollResult) -> str:
    """The payroll sheet as CSV; no cell is a formula (``sheet_text``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("month", *LINE_FIELDS))
    for line in result.lines:
        row = line_json(line)
        writer.writerow((result.month, *(sheet_text(";".join(row[f]) if f == "flags" else row[f])
                                          for f in LINE_FIELDS)))
    return buffer.getvalue()


def write_xlsx(result: PayrollResult, path: Path) -> None:
    """The payroll sheet as .xlsx: amounts as text cells with two decimals (never floats);
    every cell is a string cell, so no value is ever evaluated as a formula."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = f"payroll {result.month}"
    sheet.append(["month", *LINE_FIELDS])
    for line in result.lines:
        row = line_json(line)
        sheet.append([result.month, *(";".join(row[f]) if f == "flags" else row[f]
                                      for f in LINE_FIELDS)])
        for cell in sheet[sheet.max_row]:
            if cell.data_type == "f":  # openpyxl made a formula of a text starting with "="
                cell.data_type = "s"
    totals = result.totals
    sheet.append(["total", *("" for _ in LINE_FIELDS)])
    last = sheet.max_row
    for name in ("gross", "risk_fund_withheld", "net_pay"):
        sheet.cell(row=last, column=LINE_FIELDS.index(name) + 2, value=f"{totals[name]:.2f}")
    workbook.save(path)
