"""Customer-manager pay (SPEC §4; seed 001 第十二条–第三十条).  Pure: no I/O.

Every reported quantity is rounded half-up when it is computed (money 0.01, score 0.0001,
mgmt_score 0.01) and later formulas use the rounded value; totals are sums of rounded lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
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

CENT = Decimal("0.01")
SCORE_STEP = Decimal("0.0001")
ZERO = Decimal("0")
HUNDRED = Decimal("100")
SCORE_MIN, SCORE_MAX = Decimal("0.5"), Decimal("1.2")
#: Seed 001 第三十条 / SPEC §4: fixed amounts that are rules, not branch policy.
LATE_DEDUCTION = Decimal("50")
SICK_DAYS_FREE = Decimal("3")
RISK_FUND_RATE = Decimal("0.05")
MGMT_DEDUCTIONS = (  # (staff field, points per unit)
    ("sick_leave_days", Decimal("5")), ("personal_leave_days", Decimal("10")),
    ("late_count", Decimal("5")), ("no_event_count", Decimal("10")),
    ("meeting_missed_count", Decimal("10")), ("report_late_count", Decimal("10")),
    ("dress_count", Decimal("10")), ("off_post_count", Decimal("5")),
    ("complaint_count", Decimal("20")),
)
DEEMED_RESIGNED_HALF_DAYS = 6


def money(value: Decimal) -> Decimal:
    """``value`` rounded half-up to 0.01; a zero is always ``0.00``, never ``-0.00``."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else rounded.copy_abs()


def score4(value: Decimal) -> Decimal:
    """``value`` rounded half-up to 0.0001; a zero is always ``0.0000``."""
    rounded = value.quantize(SCORE_STEP, rounding=ROUND_HALF_UP)
    return rounded if rounded else rounded.copy_abs()


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
    deductions = sum((Decimal(getattr(staff, name)) * points
                      for name, points in MGMT_DEDUCTIONS), ZERO)
    return money(max(ZERO, HUNDRED - deductions))


def monthly_score(*, valid: int, new_value: Decimal, net_revenue: Decimal, level: LevelPolicy,
                  trainee: bool) -> Decimal:
    valid_part = Decimal(valid) / level.target_valid
    value_part = new_value / level.target_new_value
    if trainee:
        raw = Decimal("0.5") * valid_part + Decimal("0.5") * value_part
    else:
        raw = (Decimal("0.4") * valid_part + Decimal("0.4") * value_part
               + Decimal("0.2") * net_revenue / level.target_net_revenue)
    return score4(min(SCORE_MAX, max(SCORE_MIN, raw)))


def worked_share(staff: StaffRow, month: Month, policy: Policy) -> Decimal:
    """The share of the month's fixed pay and allowances earned by a CM who left in it
    (SPEC §8.3): working days (Monday–Friday) from the 1st to the leave date, over
    ``working_days_per_month`` — the seed's daily pay; 1 for everyone else, and never above."""
    left = staff.leave_date
    if left is None or (left.year, left.month) != (month.year, month.month):
        return Decimal(1)
    worked = sum(1 for day in range(1, left.day + 1)
                 if date(left.year, left.month, day).weekday() < 5)
    return min(Decimal(1), Decimal(worked) / policy.working_days_per_month)


def attendance_deduction(staff: StaffRow, *, level: LevelPolicy, fixed_pay: Decimal,
                         policy: Policy) -> Decimal:
    daily = level.fixed_pay / policy.working_days_per_month
    total = LATE_DEDUCTION * staff.late_count + daily * staff.personal_leave_days
    if staff.sick_leave_days > SICK_DAYS_FREE:
        total += daily * staff.sick_leave_days
    h = staff.absent_half_days
    if h == 1:
        total += daily * 2
    elif h in (2, 3):
        total += daily * 5
    elif h >= 4:
        total += fixed_pay
    return money(total)


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
        management = mgmt_score(s)
        score = monthly_score(valid=f.valid_accounts, new_value=new_value, net_revenue=revenue,
                              level=level, trainee=trainee)
        if score < LOW_SCORE:
            flags.add("score_below_60")
        history = history_applies(carried, current)
        outlook = level_outlook(
            title=title, asset=asset, level=level.name,
            prev_asset_level=carried.prev_asset_level if history else None,
            prev_score=carried.prev_score if history else None, score=score,
            months_since_hire=tenure, trainee_months=policy.trainee_months)
        flags |= outlook.flags
        share = worked_share(s, current, policy)
        if s.leave_date is not None:
            flags.add("left")
        fixed_pay = money(level.fixed_pay * management / HUNDRED * share)
        commission_raw = revenue * level.commission_base * score
        if not s.qualified and tenure >= policy.unqualified_after_months:
            commission_raw *= policy.unqualified_factor
            flags.add("unqualified_reduction")
        commission = money(commission_raw)
        opening_bonus = money(policy.opening_bonus_per_account * f.valid_accounts)
        # earned is neither a line item nor reported: not rounded (SPEC §4); paid and carry are
        earned = ZERO
        if not s.mainly_ipo_or_fund:
            earned = max(ZERO, new_value - level.value_standard) * policy.excess_award_rate
        available = carried.excess_carry + earned
        excess_paid = money(min(available, policy.excess_award_monthly_cap))
        carry_out = money(available - excess_paid)
        if carry_out > 0:
            flags.add("excess_carried")
        fund_commission = money(f.fund_sales * policy.fund_commission_rate)
        managed = ZERO
        if s.position in ("stationed", "regional"):
            managed = sum((net_revenue[o.cm_id] for o in reports.get(s.cm_id, ())
                           if o.position == "cm"
                           or (s.position == "regional" and o.position == "stationed")), ZERO)
        management_commission = money(managed * policy.management_commission_rate)
        position = policy.positions[s.position]
        allowance = money(position.management_allowance * share)
        transport = money(level.transport_allowance * share)
        attendance = attendance_deduction(s, level=level, fixed_pay=fixed_pay, policy=policy)
        year_to_date = year_to_date_applies(carried, current)
        ytd_absent = (carried.ytd_absent_half_days if year_to_date else 0) + s.absent_half_days
        ytd_leave = money((carried.ytd_personal_leave_days if year_to_date else ZERO)
                          + s.personal_leave_days)
        if (s.absent_half_days >= DEEMED_RESIGNED_HALF_DAYS
                or ytd_absent >= YEAR_ABSENT_HALF_DAYS_LIMIT):
            flags.add("deemed_resigned")
        if ytd_leave > YEAR_PERSONAL_LEAVE_DAYS_LIMIT:
            flags.add("personal_leave_over_limit")
        fines = money(s.fines)
        # seed 001 第二十七条4: fixed pay held while a malicious-account case is open
        malicious_fine = money(s.confirmed_malicious_accounts
                               * policy.malicious_fine_per_account)
        released = ZERO if s.under_investigation else money(carried.withheld_fixed_pay)
        gross = (fixed_pay + commission + opening_bonus + excess_paid + fund_commission
                 + management_commission + allowance + transport + released - attendance
                 - fines - malicious_fine)
        held = min(fixed_pay, max(ZERO, gross)) if s.under_investigation else ZERO
        gross -= held
        if gross < 0:
            gross = ZERO
            flags.add("shortfall")
        room = max(ZERO, position.risk_fund_cap - carried.risk_fund_balance)
        withheld = max(ZERO, min(money(gross * RISK_FUND_RATE), room))
        lines.append(PayLine(
            cm_id=s.cm_id, name=s.name, position=s.position, level=level.name,
            valid_accounts=f.valid_accounts, new_value=new_value, net_revenue=revenue,
            avg_assets_3m=avg_assets, mgmt_score=management, score=score, fixed_pay=fixed_pay,
            commission=commission, opening_bonus=opening_bonus, excess_value_award=excess_paid,
            excess_carry_out=carry_out, fund_commission=fund_commission,
            management_commission=management_commission, management_allowance=allowance,
            transport_allowance=transport, attendance_deduction=attendance, fines=fines,
            gross=gross, risk_fund_withheld=withheld,
            risk_fund_balance=money(carried.risk_fund_balance + withheld),
            net_pay=gross - withheld,
            flags=tuple(sorted(flags)),
            asset_level=asset, title=title, title_next=outlook.title_next,
            fixed_pay_withheld=held, fixed_pay_released=released,
            malicious_fine=malicious_fine,
            withheld_fixed_pay=money(carried.withheld_fixed_pay + held - released),
            ytd_absent_half_days=ytd_absent, ytd_personal_leave_days=ytd_leave,
            accounts_opened=f.accounts_opened, site=s.site, supervisor_id=s.supervisor_id,
            hire_date=s.hire_date, leave_date=s.leave_date,
        ))
    return PayrollResult(month=month, lines=tuple(lines))
