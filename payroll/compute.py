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
from brokerflow.kernel.vocabulary import FLAG_LABELS, LEVEL_LABELS
from brokerflow.kernel.xlsx_out import SheetColumn, write_sheet
from brokerflow.payroll.inputs import (
    CarriedState,
    ClientRow,
    Month,
    StaffRow,
    iter_clients,
    read_staff,
)
from brokerflow.payroll.policy import Policy, load_policy
from brokerflow.payroll.rules import (
    PayLine,
    PayrollResult,
    compute_payroll,
    fold_clients,
    staff_for_month,
)
from brokerflow.payroll.state_file import read_state

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


#: Each field's Chinese header in the XLSX export: the labels PAY, the payslip and the pay
#: items (``payroll.pay_items``) use, and how the cell is written.
SHEET_COLUMNS: tuple[SheetColumn, ...] = (
    SheetColumn("month", "月份"), SheetColumn("cm_id", "工号"), SheetColumn("level", "职级"),
    SheetColumn("valid_accounts", "有效户", "count"),
    SheetColumn("new_value", "新开有效户市值", "money"),
    SheetColumn("net_revenue", "净创收", "money"),
    SheetColumn("avg_assets_3m", "近三月日均资产", "money"),
    SheetColumn("mgmt_score", "日常管理评分", "two"),
    SheetColumn("score", "考核得分", "score"),
    SheetColumn("fixed_pay", "固定工资", "money", total=True),
    SheetColumn("commission", "提成", "money", total=True),
    SheetColumn("opening_bonus", "开户奖励", "money", total=True),
    SheetColumn("excess_value_award", "超额市值奖励", "money", total=True),
    SheetColumn("excess_carry_out", "超额奖励结转下月", "money", total=True),
    SheetColumn("fund_commission", "基金提成", "money", total=True),
    SheetColumn("management_commission", "管理提成", "money", total=True),
    SheetColumn("management_allowance", "管理津贴", "money", total=True),
    SheetColumn("transport_allowance", "交通通讯补助", "money", total=True),
    SheetColumn("attendance_deduction", "考勤扣款", "money", total=True),
    SheetColumn("fines", "罚款", "money", total=True),
    SheetColumn("gross", "应发", "money", total=True),
    SheetColumn("risk_fund_withheld", "风险基金", "money", total=True),
    SheetColumn("risk_fund_balance", "风险基金余额", "money", total=True),
    SheetColumn("net_pay", "实发", "money", total=True),
    SheetColumn("flags", "标记"),
    SheetColumn("asset_level", "资产对应职级"), SheetColumn("title", "聘任职级"),
    SheetColumn("title_next", "下月聘任职级"),
    SheetColumn("fixed_pay_withheld", "暂扣固定工资", "money", total=True),
    SheetColumn("fixed_pay_released", "发还暂扣固定工资", "money", total=True),
    SheetColumn("malicious_fine", "恶意开户罚款", "money", total=True),
    SheetColumn("withheld_fixed_pay", "累计暂扣固定工资", "money", total=True),
    SheetColumn("ytd_absent_half_days", "本年累计旷工半天数", "count"),
    SheetColumn("ytd_personal_leave_days", "本年累计事假天数", "two"),
)
LEVEL_FIELDS = ("level", "asset_level", "title", "title_next")


def sheet_row(month: str, line: PayLine) -> dict[str, Any]:
    """A line as the XLSX export holds it: numbers as ``Decimal``/``int``, levels and flags
    in Chinese."""
    row: dict[str, Any] = {"month": month}
    for name in LINE_FIELDS:
        value = getattr(line, name)
        if name == "flags":
            row[name] = "；".join(FLAG_LABELS.get(f, f) for f in value)
        elif name in LEVEL_FIELDS:
            row[name] = LEVEL_LABELS.get(value, value) if value else ""
        else:
            row[name] = value
    return row


def write_xlsx(result: PayrollResult, path: Path) -> None:
    """The payroll sheet as .xlsx (``kernel.xlsx_out``): money as numeric cells
    (``#,##0.00``), Chinese headers, a 合计 row whose 应发, 风险基金 and 实发 are the JSON
    result's totals; no text cell is ever a formula."""
    write_sheet(path, title=f"薪酬 {result.month}", columns=SHEET_COLUMNS,
                rows=[sheet_row(result.month, line) for line in result.lines],
                total_note=f"{len(result.lines)} 人")
