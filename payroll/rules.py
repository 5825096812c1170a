"""Customer-manager pay (SPEC §4; seed 001 第十二条–第三十条).  Pure: no I/O.

Every reported quantity is rounded half-up when it is computed (money 0.01, score 0.0001,
mgmt_score 0.01) and later formulas use the rounded value; totals are sums of rounded lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
from brokerflow.payroll import pay_items as items
from brokerflow.payroll.inputs import CarriedState, ClientRow, StaffRow
from brokerflow.payroll.lifecycle import (
    LOW_SCORE,
    TRAINEE,
    YEAR_ABSENT_HALF_DAYS_LIMIT,
    YEAR_PERSONAL_LEAVE_DAYS_LIMIT,
    asset_level,
    history_applies,
    level_outlook,
    paid_level,
    year_to_date_applies,
)
from brokerflow.payroll.policy import LevelPolicy, Policy
from brokerflow.payroll.workings import CENT, SCORE_STEP, ZERO, Item, money, score4

__all__ = ["CENT", "SCORE_STEP", "ZERO", "PayLine", "PayrollResult", "compute_payroll",
           "fold_clients", "money", "score4", "staff_for_month"]
DEEMED_RESIGNED_HALF_DAYS = 6


@dataclass
class ClientFigures:
    """One CM's client figures, folded from the client rows that count for them."""

    valid_accounts: int = 0
    new_value: Decimal = ZERO
    net_revenue_exact: Decimal = ZERO
    fund_sales: Decimal = ZERO
    accounts_opened: int = 0  # counted accounts opened in the month (the business report)
    assets_by_month: dict[str, Decimal] = field(default_factory=dict)


class ClientFolder:
    """Folds client rows into per-CM figures, checking duplicates and months on the way."""

    def __init__(self, *, month: str, policy: Policy, staff_ids: set[str], file: str,
                 counts: Callable[[ClientRow], bool] | None = None) -> None:
        current = Month.parse(month)
        self.month = month
        self.window = {str(current), str(current.minus(1)), str(current.minus(2))}
        self.policy = policy
        self.staff_ids = staff_ids
        self.file = file
        self.figures: dict[str, ClientFigures] = {}
        self._seen: set[tuple[str, str]] = set()
        self._keep = Decimal(1) - policy.tax_surcharge_rate
        self._counts = counts  # None: the CRM's attribution_effective and malicious columns
        self._current = (current.year, current.month)

    def add(self, row: ClientRow) -> None:
        month = row.month
        if month not in self.window:
            raise BadInput(f"month {month} is outside {min(self.window)}..{self.month}",
                           file=self.file, row=row.row, column="month")
        key = (month, row.client_id)
        seen = self._seen
        if key in seen:
            raise BadInput(f"client {row.client_id} appears twice for {month}",
                           file=self.file, row=row.row, column="client_id")
        seen.add(key)
        if row.cm_id not in self.staff_ids:
            raise BadInput(f"cm_id {row.cm_id!r} has no row in the staff file",
                           file=self.file, row=row.row, column="cm_id")
        if self._counts is not None:
            if not self._counts(row):
                return
        elif not row.attribution_effective or row.malicious:
            return
        figures = self.figures.get(row.cm_id)
        if figures is None:
            figures = self.figures[row.cm_id] = ClientFigures()
        by_month = figures.assets_by_month
        by_month[month] = by_month.get(month, ZERO) + row.assets
        if month != self.month:
            return
        policy = self.policy
        figures.net_revenue_exact += (row.gross_commission * self._keep
                                      - row.turnover * policy.regulatory_fee_rate)
        figures.fund_sales += row.fund_sales_commission
        opened = row.open_date
        if (opened.year, opened.month) == self._current:
            figures.accounts_opened += 1
        if (opened.year, opened.month) == self._current and (
                row.purchases > policy.valid_account_min_amount
                or row.assets > policy.valid_account_min_amount):
            figures.valid_accounts += (policy.institution_weight
                                       if row.client_type == "institution" else 1)
            figures.new_value += row.assets


def fold_clients(rows: Iterable[ClientRow], *, month: str, policy: Policy,
                 staff_ids: set[str], file: str = "clients.csv",
                 counts: Callable[[ClientRow], bool] | None = None) -> dict[str, ClientFigures]:
    folder = ClientFolder(month=month, policy=policy, staff_ids=staff_ids, file=file,
                          counts=counts)
    for row in rows:
        folder.add(row)
    return folder.figures


@dataclass(frozen=True)
class PayLine:
    cm_id: str
    name: str
    position: str
    level: str
    valid_accounts: int
    new_value: Decimal
    net_revenue: Decimal
    avg_assets_3m: Decimal
    mgmt_score: Decimal
    score: Decimal
    fixed_pay: Decimal
    commission: Decimal
    opening_bonus: Decimal
    excess_value_award: Decimal
    excess_carry_out: Decimal
    fund_commission: Decimal
    management_commission: Decimal
    management_allowance: Decimal
    transport_allowance: Decimal
    attendance_deduction: Decimal
    fines: Decimal
    gross: Decimal
    risk_fund_withheld: Decimal
    risk_fund_balance: Decimal
    net_pay: Decimal
    flags: tuple[str, ...]
    # SPEC §8.1
    asset_level: str = ""
    title: str | None = None
    title_next: str | None = None
    fixed_pay_withheld: Decimal = ZERO
    fixed_pay_released: Decimal = ZERO
    malicious_fine: Decimal = ZERO
    withheld_fixed_pay: Decimal = ZERO
    ytd_absent_half_days: int = 0
    ytd_personal_leave_days: Decimal = ZERO
    # SPEC §8.3, for the business report (not in the §6.3 result)
    accounts_opened: int = 0
    site: str = ""
    supervisor_id: str = ""
    hire_date: date | None = None
    leave_date: date | None = None
    # SPEC §9: how each line item was computed (the payslip PSL), in payslip order
    workings: tuple[Item, ...] = ()


@dataclass(frozen=True)
class PayrollResult:
    month: str
    lines: tuple[PayLine, ...]

    @property
    def totals(self) -> dict[str, Decimal]:
        return {
            "gross": sum((line.gross for line in self.lines), ZERO),
            "net_pay": sum((line.net_pay for line in self.lines), ZERO),
            "risk_fund_withheld": sum((line.risk_fund_withheld for line in self.lines), ZERO),
        }


def staff_for_month(staff: list[StaffRow], *, month: str, file: str = "staff.csv"
                    ) -> list[StaffRow]:
    """The month's staff rows, after checking months, duplicates and reporting lines."""
    current = Month.parse(month)
    window = {str(current), str(current.minus(1)), str(current.minus(2))}
    rows: dict[str, StaffRow] = {}
    for s in staff:
        if s.month not in window:
            raise BadInput(f"month {s.month} is outside {min(window)}..{month}", file=file,
                           row=s.row, column="month")
        if s.month != month:
            continue
        if s.leave_date is not None and (s.leave_date.year, s.leave_date.month) < (
                current.year, current.month):
            raise BadInput(f"{s.cm_id} left on {s.leave_date}: a CM who left is paid for the "
                           "days of the leave month and has no row after it", file=file,
                           row=s.row, column="leave_date")
        if s.cm_id in rows:
            raise BadInput(f"cm_id {s.cm_id} appears twice for {month}", file=file, row=s.row,
                           column="cm_id")
        rows[s.cm_id] = s
    if not rows:
        raise BadInput(f"no staff rows for {month}", file=file, column="month")
    for s in rows.values():
        if s.supervisor_id and s.supervisor_id not in rows:
            raise BadInput(f"supervisor_id {s.supervisor_id!r} is not in the staff file",
                           file=file, row=s.row, column="supervisor_id")
        seen, current_id = {s.cm_id}, s.supervisor_id
        while current_id:
            if current_id in seen:
                raise BadInput(f"reporting line of {s.cm_id} loops through {current_id}",
                               file=file, row=s.row, column="supervisor_id")
            seen.add(current_id)
            current_id = rows[current_id].supervisor_id
    return sorted(rows.values(), key=lambda s: s.cm_id)


def months_since_hire(staff: StaffRow, month: Month) -> int:
    return (month.year - staff.hire_date.year) * 12 + (month.month - staff.hire_date.month)


def mgmt_score(staff: StaffRow) -> Decimal:
    """日常管理评分 (``pay_items.mgmt_score``)."""
    return items.mgmt_score(staff).value


def monthly_score(*, valid: int, new_value: Decimal, net_revenue: Decimal, level: LevelPolicy,
                  trainee: bool) -> Decimal:
    """月度考核得分, the 考核系数 (``pay_items.monthly_score``)."""
    return items.monthly_score(valid=valid, new_value=new_value, net_revenue=net_revenue,
                               level=level, trainee=trainee).value


def compute_payroll(
    *, month: str, staff: list[StaffRow], figures: dict[str, ClientFigures], policy: Policy,
    state: dict[str, CarriedState],
) -> PayrollResult:
    """Every CM's pay line for ``month`` (staff already checked by ``staff_for_month``)."""
    current = Month.parse(month)
    window = [str(current), str(current.minus(1)), str(current.minus(2))]
    net_revenue = {s.cm_id: money(figures.get(s.cm_id, ClientFigures()).net_revenue_exact)
                   for s in staff}
    reports: dict[str, list[StaffRow]] = {}
    for s in staff:
        if s.supervisor_id:
            reports.setdefault(s.supervisor_id, []).append(s)
    lines = []
    for s in staff:
        f = figures.get(s.cm_id, ClientFigures())
        carried = state.get(s.cm_id, CarriedState())
        flags: set[str] = set()
        tenure = months_since_hire(s, current)
        new_value = money(f.new_value)
        revenue = net_revenue[s.cm_id]
        avg_assets = money(sum((f.assets_by_month.get(m, ZERO) for m in window), ZERO) / 3)
        title = carried.title
        asset = asset_level(avg_assets, months_since_hire=tenure, title=title, policy=policy)
        level = policy.levels[paid_level(asset, title)]
        trainee = level.name == TRAINEE
        if trainee:
            flags.add("trainee")
        management_item = items.mgmt_score(s)
        management = management_item.value
        score_item = items.monthly_score(valid=f.valid_accounts, new_value=new_value,
                                         net_revenue=revenue, level=level, trainee=trainee)
        score = score_item.value
        if score < LOW_SCORE:
            flags.add("score_below_60")
        history = history_applies(carried, current)
        outlook = level_outlook(
            title=title, asset=asset, level=level.name,
            prev_asset_level=carried.prev_asset_level if history else None,
            prev_score=carried.prev_score if history else None, score=score,
            months_since_hire=tenure, trainee_months=policy.trainee_months)
        flags |= outlook.flags
        share = items.worked_share(s, current, policy)
        if s.leave_date is not None:
            flags.add("left")
        fixed = items.fixed_pay(level=level, mgmt_score=management, share=share)
        reduced = not s.qualified and tenure >= policy.unqualified_after_months
        if reduced:
            flags.add("unqualified_reduction")
        commission = items.commission(net_revenue=revenue, level=level, score=score,
                                      reduced_by=policy.unqualified_factor if reduced else None)
        opening = items.opening_bonus(valid_accounts=f.valid_accounts, policy=policy)
        excess, carry = items.excess_award(new_value=new_value, level=level, policy=policy,
                                           carry_in=carried.excess_carry,
                                           mainly_ipo_or_fund=s.mainly_ipo_or_fund)
        if carry.value > 0:
            flags.add("excess_carried")
        fund = items.fund_commission(fund_sales=f.fund_sales, policy=policy)
        managed = []
        if s.position in ("stationed", "regional"):
            managed = [(f"{o.name}（{o.cm_id}）", net_revenue[o.cm_id])
                       for o in reports.get(s.cm_id, ())
                       if o.position == "cm"
                       or (s.position == "regional" and o.position == "stationed")]
        management_commission = items.management_commission(
            managed=managed, policy=policy, position=s.position)
        position = policy.positions[s.position]
        allowance, transport = items.allowances(position=position, level=level, share=share)
        attendance = items.attendance_deduction(s, level=level, fixed=fixed, policy=policy)
        year_to_date = year_to_date_applies(carried, current)
        ytd_absent = (carried.ytd_absent_half_days if year_to_date else 0) + s.absent_half_days
        ytd_leave = money((carried.ytd_personal_leave_days if year_to_date else ZERO)
                          + s.personal_leave_days)
        if (s.absent_half_days >= DEEMED_RESIGNED_HALF_DAYS
                or ytd_absent >= YEAR_ABSENT_HALF_DAYS_LIMIT):
            flags.add("deemed_resigned")
        if ytd_leave > YEAR_PERSONAL_LEAVE_DAYS_LIMIT:
            flags.add("personal_leave_over_limit")
        fines, malicious = items.fines(s, policy=policy)
        # seed 001 第二十七条4: fixed pay held while a malicious-account case is open
        released = items.released_pay(withheld_before=carried.withheld_fixed_pay,
                                      under_investigation=s.under_investigation)
        held, gross, short = items.gross(
            added=(fixed, commission, opening, excess, fund, management_commission, allowance,
                   transport, released), deducted=(attendance, fines, malicious), fixed=fixed,
            under_investigation=s.under_investigation)
        if short:
            flags.add("shortfall")
        withheld, balance, net = items.risk_fund(gross_pay=gross, position=position,
                                                 balance_before=carried.risk_fund_balance)
        withheld_pay = items.withheld_pay(before=carried.withheld_fixed_pay, held=held,
                                          released=released)
        lines.append(PayLine(
            cm_id=s.cm_id, name=s.name, position=s.position, level=level.name,
            valid_accounts=f.valid_accounts, new_value=new_value, net_revenue=revenue,
            avg_assets_3m=avg_assets, mgmt_score=management, score=score,
            fixed_pay=fixed.value, commission=commission.value, opening_bonus=opening.value,
            excess_value_award=excess.value, excess_carry_out=carry.value,
            fund_commission=fund.value, management_commission=management_commission.value,
            management_allowance=allowance.value, transport_allowance=transport.value,
            attendance_deduction=attendance.value, fines=fines.value, gross=gross.value,
            risk_fund_withheld=withheld.value, risk_fund_balance=balance.value,
            net_pay=net.value, flags=tuple(sorted(flags)),
            asset_level=asset, title=title, title_next=outlook.title_next,
            fixed_pay_withheld=held.value, fixed_pay_released=released.value,
            malicious_fine=malicious.value, withheld_fixed_pay=withheld_pay.value,
            ytd_absent_half_days=ytd_absent, ytd_personal_leave_days=ytd_leave,
            accounts_opened=f.accounts_opened, site=s.site, supervisor_id=s.supervisor_id,
            hire_date=s.hire_date, leave_date=s.leave_date,
            workings=(management_item, score_item, fixed, commission, opening, excess, fund,
                      management_commission, allowance, transport, released, attendance,
                      fines, malicious, held, gross, withheld, net, carry, balance, withheld_pay),
        ))
    return PayrollResult(month=month, lines=tuple(lines))
