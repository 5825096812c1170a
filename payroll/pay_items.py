"""The line items of a pay line (SPEC §4 lines 1–12, §8.1), each built as ``workings``
objects: ``compute_payroll`` takes every number from them, a payslip prints their formulas.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.vocabulary import LEVEL_LABELS, POSITION_LABELS
from brokerflow.payroll.inputs import StaffRow
from brokerflow.payroll.policy import LevelPolicy, Policy, PositionPolicy
from brokerflow.payroll.workings import (
    ZERO,
    Expr,
    Extreme,
    Format,
    Item,
    Product,
    Rounded,
    Sum,
    Term,
    product,
    total,
)

HUNDRED = Decimal("100")
#: Seed 001 第三十条 / SPEC §4: fixed amounts that are rules, not branch policy.
LATE_DEDUCTION = Decimal("50")
SICK_DAYS_FREE = Decimal("3")
RISK_FUND_RATE = Decimal("0.05")
ONE = Term("", Decimal(1), "plain")  # a whole month: nothing to scale
NIL = Term("", ZERO, "plain")


#: 日常管理评分 (seed 001): points off 100 per unit of each staff-file field.
MGMT_DEDUCTIONS = (  # (staff field, label, points per unit)
    ("sick_leave_days", "病假天数", Decimal("5")),
    ("personal_leave_days", "事假天数", Decimal("10")),
    ("late_count", "迟到次数", Decimal("5")), ("no_event_count", "未开展活动次数", Decimal("10")),
    ("meeting_missed_count", "缺席会议次数", Decimal("10")),
    ("report_late_count", "报表迟交次数", Decimal("10")),
    ("dress_count", "着装不规范次数", Decimal("10")), ("off_post_count", "脱岗次数", Decimal("5")),
    ("complaint_count", "客户投诉次数", Decimal("20")),
)
#: The 考核系数's bounds (seed 001).
SCORE_MIN, SCORE_MAX = Decimal("0.5"), Decimal("1.2")


def mgmt_score(staff: StaffRow) -> Item:
    """日常管理评分: 100 less the points of each deduction, not below 0."""
    steps: list[tuple[str, Expr]] = [("", Term("满分", HUNDRED, "plain"))]
    for name, label, points in MGMT_DEDUCTIONS:
        count = Decimal(getattr(staff, name))
        if count:
            steps.append(("−", product(Term(label, count, "plain"),
                                       Term("每次扣分", points, "plain"))))
    score: Expr = Sum(tuple(steps)) if len(steps) > 1 else steps[0][1]
    return Item("mgmt_score", "日常管理评分", Extreme("max", (NIL, score)))


def monthly_score(*, valid: int, new_value: Decimal, net_revenue: Decimal,
                  level: LevelPolicy, trainee: bool) -> Item:
    """月度考核得分 (考核系数): weighted shares of the level's targets, within 0.5–1.2,
    rounded to 0.0001; a trainee's counts valid accounts and new value only."""
    name = _level(level)

    def share(label: str, amount: Decimal, target: Decimal, weight: str,
              fmt: Format = "money") -> Product:  # (amount ÷ target) × weight
        return Product((("", Term(label, amount, fmt)),
                        ("÷", Term(f"{name}{label}目标", target, fmt)),
                        ("×", Term("权重", Decimal(weight), "plain"))))

    weight = "0.5" if trainee else "0.4"
    parts = [share("有效户", Decimal(valid), level.target_valid, weight, "plain"),
             share("新开有效户市值", new_value, level.target_new_value, weight)]
    if not trainee:  # the engine's order: (weight × revenue) ÷ target
        parts.append(Product((("", Term("权重", Decimal("0.2"), "plain")),
                              ("×", Term("净创收", net_revenue)),
                              ("÷", Term(f"{name}净创收目标", level.target_net_revenue)))))
    raw = total(parts[0], *(("+", p) for p in parts[1:]))
    bounded = Extreme("min", (Term("上限", SCORE_MAX, "plain"),
                              Extreme("max", (Term("下限", SCORE_MIN, "plain"), raw))))
    return Item("score", "考核系数", Rounded(bounded, "score"), rounded=False, fmt="score")


def _level(level: LevelPolicy) -> str:
    return LEVEL_LABELS.get(level.name, level.name)


def worked_share(staff: StaffRow, month: Month, policy: Policy) -> Expr:
    """The share of the month's fixed pay and allowances earned by a CM who left in it
    (SPEC §8.3): working days (Monday–Friday) from the 1st to the leave date, over
    ``working_days_per_month`` — the seed's daily pay; 1 for everyone else, and never above."""
    left = staff.leave_date
    if left is None or (left.year, left.month) != (month.year, month.month):
        return ONE
    worked = sum(1 for day in range(1, left.day + 1)
                 if date(left.year, left.month, day).weekday() < 5)
    share = Product((("", Term("本月在岗工作日", Decimal(worked), "plain")),
                     ("÷", Term("月计薪天数", policy.working_days_per_month, "plain"))))
    return share if share.value < 1 else ONE


def _scaled(base: Term, share: Expr) -> Expr:
    return base if share is ONE else product(base, share)


def fixed_pay(*, level: LevelPolicy, mgmt_score: Decimal, share: Expr) -> Item:
    """Line 1: the level's fixed pay × 日常管理评分 / 100 (× the share of a leaver)."""
    steps: list[tuple[str, Expr]] = [
        ("", Term(f"{_level(level)}固定工资", level.fixed_pay)),
        ("×", Term("日常管理评分", mgmt_score)), ("÷", Term("", HUNDRED, "plain"))]
    if share is not ONE:
        steps.append(("×", share))
    return Item("fixed_pay", "固定工资", Product(tuple(steps)))


def commission(*, net_revenue: Decimal, level: LevelPolicy, score: Decimal,
               reduced_by: Decimal | None) -> Item:
    """Line 2: 净创收 × 提成基数 × 考核系数 (× 未取得资格系数)."""
    factors: list[Expr] = [Term("净创收", net_revenue), Term("提成基数", level.commission_base,
                                                          "plain"),
                           Term("考核系数", score, "score")]
    if reduced_by is not None:
        factors.append(Term("未取得资格系数", reduced_by, "plain"))
    return Item("commission", "提成", product(*factors))


def opening_bonus(*, valid_accounts: int, policy: Policy) -> Item:
    """Line 3: 每户开户奖励 × 有效户."""
    return Item("opening_bonus", "开户奖励", product(
        Term("每户开户奖励", policy.opening_bonus_per_account),
        Term("有效户", Decimal(valid_accounts), "plain")))


def excess_award(*, new_value: Decimal, level: LevelPolicy, policy: Policy,
                 carry_in: Decimal, mainly_ipo_or_fund: bool) -> tuple[Item, Item]:
    """Line 4: (paid, carried out).  Earned is neither rounded nor reported (SPEC §4)."""
    earned: Expr
    if mainly_ipo_or_fund:
        earned = Term("本月应得（新增资金主要用于打新或申购基金，不计）", ZERO)
    else:
        earned = product(
            Extreme("max", (NIL, total(Term("月度新开有效户市值", new_value),
                                       ("−", Term(f"{_level(level)}市值标准",
                                                  level.value_standard))))),
            Term("超额奖励比例", policy.excess_award_rate, "plain"))
    available = total(Term("上月结转超额奖励", carry_in), ("+", earned))
    paid = Item("excess_value_award", "超额市值奖励", Extreme("min", (
        available, Term("每月上限", policy.excess_award_monthly_cap))))
    carry = Item("excess_carry_out", "超额奖励结转下月", total(available, ("−", paid)),
                 opening=carry_in)
    return paid, carry


def fund_commission(*, fund_sales: Decimal, policy: Policy) -> Item:
    """Line 5: 客户基金销售佣金 × 基金提成比例."""
    return Item("fund_commission", "基金提成", product(
        Term("客户基金销售佣金", fund_sales), Term("基金提成比例", policy.fund_commission_rate,
                                           "plain")))


def management_commission(*, managed: Sequence[tuple[str, Decimal]], policy: Policy,
                          position: str) -> Item:
    """Line 6: the managed staff's net revenue × 管理提成比例; ``managed``: (who, revenue)."""
    base: Expr
    if not managed:
        label = ("无下属人员净创收" if position in ("stationed", "regional")
                 else f"{POSITION_LABELS.get(position, position)}无管理提成")
        base = Term(label, ZERO)
    elif len(managed) == 1:
        base = Term(f"{managed[0][0]} 净创收", managed[0][1])
    else:
        base = Sum(tuple(("+" if i else "", Term(f"{who} 净创收", revenue))
                         for i, (who, revenue) in enumerate(managed)))
    return Item("management_commission", "管理提成", product(
        base, Term("管理提成比例", policy.management_commission_rate, "plain")))


def allowances(*, position: PositionPolicy, level: LevelPolicy, share: Expr
               ) -> tuple[Item, Item]:
    """Lines 7 and 8: management and transport allowances (× the share of a leaver)."""
    title = POSITION_LABELS.get(position.name, position.name)
    return (Item("management_allowance", "管理津贴", _scaled(
                Term(f"{title}管理津贴标准", position.management_allowance), share)),
            Item("transport_allowance", "交通通讯补助", _scaled(
                Term(f"{_level(level)}交通通讯补助标准", level.transport_allowance), share)))


def attendance_deduction(staff: StaffRow, *, level: LevelPolicy, fixed: Item,
                         policy: Policy) -> Item:
    """Line 9: lateness, personal leave, sick leave over 3 days, unexcused absence."""
    daily = Product((("", Term(f"{_level(level)}固定工资", level.fixed_pay)),
                     ("÷", Term("月计薪天数", policy.working_days_per_month, "plain"))))
    parts: list[Expr] = []
    if staff.late_count:
        parts.append(product(Term("每次迟到早退扣款", LATE_DEDUCTION),
                             Term("迟到早退次数", Decimal(staff.late_count), "plain")))
    if staff.personal_leave_days:
        parts.append(product(daily, Term("事假天数", staff.personal_leave_days, "plain")))
    if staff.sick_leave_days > SICK_DAYS_FREE:
        parts.append(product(daily, Term("病假天数（超过3天，全部扣）", staff.sick_leave_days,
                                         "plain")))
    h = staff.absent_half_days
    if h == 1:
        parts.append(product(daily, Term("旷工半天，扣日薪天数", Decimal(2), "plain")))
    elif h in (2, 3):
        parts.append(product(daily, Term(f"旷工{h}个半天，扣日薪天数", Decimal(5), "plain")))
    elif h >= 4:
        parts.append(Term(f"旷工{h}个半天，扣全月固定工资", fixed.value))
    expr: Expr = (Term("本月无考勤扣款", ZERO) if not parts else parts[0] if len(parts) == 1
                  else Sum(tuple(("+" if i else "", p) for i, p in enumerate(parts))))
    return Item("attendance_deduction", "考勤扣款", expr)


def fines(staff: StaffRow, *, policy: Policy) -> tuple[Item, Item]:
    """Line 10 and the malicious-account fine (seed 001 第二十七条4)."""
    return (Item("fines", "罚款", Term("差错、违规罚款", staff.fines)),
            Item("malicious_fine", "恶意开户罚款", product(
                Term("本月确认恶意开户数", Decimal(staff.confirmed_malicious_accounts), "plain"),
                Term("每户罚款", policy.malicious_fine_per_account))))


def released_pay(*, withheld_before: Decimal, under_investigation: bool) -> Item:
    """Withheld fixed pay released when no investigation is open (SPEC §8.1)."""
    expr = (Term("调查未结，暂不发还", ZERO) if under_investigation
            else Term("累计暂扣固定工资", withheld_before))
    return Item("fixed_pay_released", "发还暂扣固定工资", expr)


def gross(*, added: Sequence[Item], deducted: Sequence[Item], fixed: Item,
          under_investigation: bool) -> tuple[Item, Item, bool]:
    """Line 11 (floor 0) after withholding the fixed pay of a CM under investigation:
    (withheld this month, gross, whether it fell short)."""
    steps: list[tuple[str, Expr]] = [("+" if i else "", item) for i, item in enumerate(added)]
    steps += [("−", item) for item in deducted]
    before = Sum(tuple(steps))
    held: Item
    expr: Expr
    if under_investigation:
        held = Item("fixed_pay_withheld", "暂扣固定工资（调查期间）",
                    Extreme("min", (fixed, Extreme("max", (NIL, before)))), rounded=False)
        expr = total(Item("gross_before", "暂扣前应发", before, rounded=False), ("−", held))
    else:
        held = Item("fixed_pay_withheld", "暂扣固定工资", Term("不在调查期间", ZERO),
                    rounded=False)
        expr = before
    short = expr.value < 0
    if short:
        expr = Extreme("max", (NIL, expr))
    return held, Item("gross", "应发", expr, rounded=False), short


def risk_fund(*, gross_pay: Item, position: PositionPolicy, balance_before: Decimal
              ) -> tuple[Item, Item, Item]:
    """Line 12: (risk fund withheld, balance after, net pay)."""
    room: Expr = total(Term(f"{POSITION_LABELS.get(position.name, position.name)}风险基金上限",
                            position.risk_fund_cap), ("−", Term("已提余额", balance_before)))
    if room.value < 0:
        room = Extreme("max", (NIL, room))
    expr: Expr = Extreme("min", (
        Rounded(product(gross_pay, Term("提取比例", RISK_FUND_RATE, "plain"))), room))
    if expr.value < 0:
        expr = Extreme("max", (NIL, expr))
    withheld = Item("risk_fund_withheld", "风险基金", expr, rounded=False)
    balance = Item("risk_fund_balance", "风险基金余额",
                   total(Term("上月余额", balance_before), ("+", withheld)),
                   opening=balance_before)
    net = Item("net_pay", "实发", total(gross_pay, ("−", withheld)), rounded=False)
    return withheld, balance, net


def withheld_pay(*, before: Decimal, held: Item, released: Item) -> Item:
    """Fixed pay withheld in all, carried out (SPEC §8.1)."""
    return Item("withheld_fixed_pay", "累计暂扣固定工资", total(
        Term("上月累计暂扣", before), ("+", held), ("−", released)), opening=before)
