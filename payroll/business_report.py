"""The monthly business report (营业部业务月报, RPT; seed 002 第六条, 第二十二条; SPEC §8.3) and
the half-year and year reports that sum its months.  Pure: a closing's lines, the previous
month's lines and the month's level changes in; the report's data out (``templates/RPT.html``
lays it out, ``brokerflow report show --format json`` prints it).

Teams are the staff file's sites (网点/驻点), in natural order (网点2 before 网点10), a line
without a site last.  Money is ``Decimal``: the lines' rounded items summed, rounded half-up to
0.01, shown as two-decimal strings.  A half year is 01–06 (H1) or 07–12 (H2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, TEAM_LEADER_ROLES, UserView
from brokerflow.kernel.vocabulary import LEVEL_CHANGE_KINDS, LEVEL_LABELS, POSITION_LABELS
from brokerflow.payroll.evaluation_plan import natural_key
from brokerflow.payroll.rules import money

ZERO = Decimal("0.00")
NO_SITE = "（未填网点）"
TOTAL = "合计"
_PERIOD = re.compile(r"^([0-9]{4})(?:-(0[1-9]|1[0-2])|H([12]))?$")
#: The money columns of a team's row (summed from the lines' keys of the same name).
MONEY = ("new_value", "net_revenue", "gross", "net_pay", "risk_fund_withheld")
#: Who may read a branch's business reports besides head office: its management and leaders.
READER_ROLES = BRANCH_MANAGEMENT_ROLES | TEAM_LEADER_ROLES

Line = Mapping[str, Any]


@dataclass(frozen=True)
class Period:
    """What a report covers: a month (``2026-10``), a half year (``2026H1``, ``2026H2``) or a
    year (``2026``); ``months`` in order."""

    text: str
    kind: str  # month | half | year
    months: tuple[str, ...]

    @property
    def label(self) -> str:
        year = self.text[:4]
        if self.kind == "month":
            return f"{year}年{int(self.text[5:])}月"
        if self.kind == "half":
            return f"{year}年{'上' if self.text.endswith('H1') else '下'}半年"
        return f"{year}年度"


def parse_period(text: str, *, column: str = "--period") -> Period:
    """``2026-10`` | ``2026H1`` | ``2026H2`` | ``2026``; BadInput naming ``column`` else."""
    match = _PERIOD.match(text.strip())
    if match is None:
        raise BadInput(f"period {text!r} must be a month YYYY-MM, a half year YYYYH1/YYYYH2 "
                       "or a year YYYY", column=column)
    year, month, half = int(match[1]), match[2], match[3]
    if month:
        return Period(f"{year:04d}-{month}", "month", (f"{year:04d}-{month}",))
    first, count, kind = (1, 12, "year") if half is None else (6 * int(half) - 5, 6, "half")
    months = tuple(str(Month(year, first + k)) for k in range(count))
    return Period(f"{year:04d}" + (f"H{half}" if half else ""), kind, months)


def periods_ending(month: str) -> list[Period]:
    """The half year (and in December the year) that ``month`` completes."""
    m = Month.parse(month)
    if m.month == 6:
        return [parse_period(f"{m.year}H1")]
    if m.month == 12:
        return [parse_period(f"{m.year}H2"), parse_period(str(m.year))]
    return []


def report_refusal(user: UserView, *, branch: str) -> str | None:
    """None when ``user`` may read ``branch``'s business reports (SPEC §5: head office; the
    branch's management and team leaders); else why not."""
    if user.is_head_office:
        return None
    if user.branch != branch:
        return f"not of branch {branch}"
    if user.has_any(READER_ROLES):
        return None
    return "needs head office, the branch's management or a team leader role"


@dataclass(frozen=True)
class TeamFigures:
    """One row of the report: a team's (or the branch's) figures; ``net_revenue_last`` is None
    when last month is not closed (shown as —).  ``staff`` of a period: at its last month."""

    team: str
    staff: int = 0
    accounts_opened: int = 0
    valid_accounts: int = 0
    new_value: Decimal = ZERO
    net_revenue: Decimal = ZERO
    gross: Decimal = ZERO
    net_pay: Decimal = ZERO
    risk_fund_withheld: Decimal = ZERO
    net_revenue_last: Decimal | None = None

    @property
    def net_revenue_change(self) -> Decimal | None:
        return None if self.net_revenue_last is None else self.net_revenue - self.net_revenue_last

    @property
    def net_revenue_change_rate(self) -> Decimal | None:
        """The change in percent of last month's (None without a base)."""
        last, change = self.net_revenue_last, self.net_revenue_change
        if last is None or change is None or last == 0:
            return None
        return money(change * 100 / last)


@dataclass(frozen=True)
class StaffChange:
    """A join (hire date in the month), a leave (leave date in it) or a level change
    effective in it (``kind``, titles and the LVL serial)."""

    month: str
    cm_id: str
    name: str = ""
    team: str = ""
    position: str = ""
    date: str = ""  # the hire or leave day; a level change's effective month
    kind: str = ""
    from_title: str = ""
    to_title: str = ""
    lvl_serial: str = ""


@dataclass(frozen=True)
class MonthReport:
    """The data of one month's RPT."""

    branch: str
    month: str
    teams: tuple[TeamFigures, ...]
    total: TeamFigures
    previous_closed: bool
    joins: tuple[StaffChange, ...] = ()
    leaves: tuple[StaffChange, ...] = ()
    level_changes: tuple[StaffChange, ...] = ()
    revision: int = 1
    pay_serial: str = ""
    pas_serial: str = ""
    rpt_serial: str = ""
    policy: str = ""


@dataclass(frozen=True)
class PeriodReport:
    """A half year's or year's report: the closed months summed, the others ``missing``."""

    branch: str
    period: Period
    months: tuple[MonthReport, ...]
    missing: tuple[str, ...]
    teams: tuple[TeamFigures, ...]
    total: TeamFigures
    joins: tuple[StaffChange, ...] = ()
    leaves: tuple[StaffChange, ...] = ()
    level_changes: tuple[StaffChange, ...] = ()


def _team(line: Line) -> str:
    return str(line.get("site") or "").strip()


def _team_order(team: str) -> tuple[bool, tuple[tuple[int, int | str], ...]]:
    return (team == "", natural_key(team))


def _money(line: Line, key: str) -> Decimal:
    try:
        return Decimal(str(line.get(key) or "0"))
    except InvalidOperation:
        raise BadInput(f"{line.get('cm_id')}: {key} {line.get(key)!r} is not a number",
                       column=key) from None


def _count(line: Line, key: str) -> int:
    try:
        return int(line.get(key) or 0)
    except (TypeError, ValueError):
        raise BadInput(f"{line.get('cm_id')}: {key} {line.get(key)!r} is not a count",
                       column=key) from None


def _fold(team: str, lines: Iterable[Line]) -> TeamFigures:
    rows = list(lines)
    amounts = {key: money(sum((_money(line, key) for line in rows), ZERO)) for key in MONEY}
    return TeamFigures(team=team, staff=len(rows),
                       accounts_opened=sum(_count(line, "accounts_opened") for line in rows),
                       valid_accounts=sum(_count(line, "valid_accounts") for line in rows),
                       **amounts)


def _revenue(lines: Iterable[Line]) -> Decimal:
    return money(sum((_money(line, "net_revenue") for line in lines), ZERO))


def _by_team(lines: Iterable[Line]) -> dict[str, list[Line]]:
    teams: dict[str, list[Line]] = {}
    for line in lines:
        teams.setdefault(_team(line), []).append(line)
    return teams


def _in_month(day: object, month: str) -> bool:
    return isinstance(day, str) and day[:7] == month


def _person(line: Line, month: str, day: str) -> StaffChange:
    return StaffChange(month=month, cm_id=str(line.get("cm_id", "")),
                       name=str(line.get("name") or ""), team=_team(line),
                       position=str(line.get("position") or ""), date=day)


def _by_id(changes: Iterable[StaffChange]) -> tuple[StaffChange, ...]:
    return tuple(sorted(changes, key=lambda c: (c.month, natural_key(c.cm_id), c.date)))


def build_month_report(*, branch: str, month: str, lines: Sequence[Line],
                       previous_lines: Sequence[Line] | None,
                       level_changes: Iterable[StaffChange] = (), revision: int = 1,
                       pay_serial: str = "", pas_serial: str = "", rpt_serial: str = "",
                       policy: str = "") -> MonthReport:
    """The month's report from its closing ``lines`` (SPEC §6.3 plus ``site``,
    ``accounts_opened``, ``hire_date``, ``leave_date``, ``name``, ``position``; missing keys
    count as empty), last month's closed lines (None: not closed, shown as —) and the level
    changes effective in the month (their name, team and position taken from the lines when
    the CM has one)."""
    Month.parse(month)
    this, last = _by_team(lines), _by_team(previous_lines or ())
    teams = []
    for team in sorted(set(this) | set(last), key=_team_order):
        figures = _fold(team, this.get(team, ()))
        if previous_lines is not None:
            figures = replace(figures, net_revenue_last=_revenue(last.get(team, ())))
        teams.append(figures)
    total = _summed(TOTAL, teams, sum(t.staff for t in teams))
    if previous_lines is not None:
        total = replace(total, net_revenue_last=money(sum(
            (t.net_revenue_last or ZERO for t in teams), ZERO)))
    joins = [_person(line, month, line["hire_date"]) for line in lines
             if _in_month(line.get("hire_date"), month)]
    leaves = [_person(line, month, line["leave_date"]) for line in lines
              if _in_month(line.get("leave_date"), month)]
    known = {str(line.get("cm_id")): line for line in lines}
    levels = []
    for change in level_changes:
        line = known.get(change.cm_id, {})
        levels.append(replace(change, month=month, date=change.date or month,
                              name=str(line.get("name") or "") or change.name,
                              team=change.team or _team(line),
                              position=change.position or str(line.get("position") or "")))
    return MonthReport(branch=branch, month=month, teams=tuple(teams), total=total,
                       previous_closed=previous_lines is not None, joins=_by_id(joins),
                       leaves=_by_id(leaves), level_changes=_by_id(levels), revision=revision,
                       pay_serial=pay_serial, pas_serial=pas_serial, rpt_serial=rpt_serial,
                       policy=policy)


def _summed(team: str, rows: Sequence[TeamFigures], staff: int) -> TeamFigures:
    amounts = {key: money(sum((getattr(r, key) for r in rows), ZERO)) for key in MONEY}
    return TeamFigures(team=team, staff=staff,
                       accounts_opened=sum(r.accounts_opened for r in rows),
                       valid_accounts=sum(r.valid_accounts for r in rows), **amounts)


def sum_reports(branch: str, period: Period | str,
                reports: Iterable[MonthReport]) -> PeriodReport:
    """The half year's or year's report: counts and money of the given month reports summed
    per team and in total (``staff``: at the last month given), their staff changes and PAS
    serials listed, every month of the period without a report named ``missing``."""
    span = period if isinstance(period, Period) else parse_period(period, column="period")
    if span.kind == "month":
        raise ValueError(f"{span.text} is a month: sum_reports sums half years and years")
    by_month: dict[str, MonthReport] = {}
    for report in reports:
        if report.branch != branch or report.month not in span.months:
            raise ValueError(f"{report.branch} {report.month} is not of {branch} {span.text}")
        if report.month in by_month:
            raise ValueError(f"{report.month} is given twice")
        by_month[report.month] = report
    months = tuple(by_month[m] for m in span.months if m in by_month)
    last = {t.team: t.staff for t in months[-1].teams} if months else {}
    names = sorted({t.team for r in months for t in r.teams}, key=_team_order)
    teams = tuple(_summed(team, [t for r in months for t in r.teams if t.team == team],
                          last.get(team, 0)) for team in names)
    total = _summed(TOTAL, [r.total for r in months], months[-1].total.staff if months else 0)
    return PeriodReport(
        branch=branch, period=span, months=months,
        missing=tuple(m for m in span.months if m not in by_month), teams=teams, total=total,
        joins=tuple(c for r in months for c in r.joins),
        leaves=tuple(c for r in months for c in r.leaves),
        level_changes=tuple(c for r in months for c in r.level_changes))


# --------------------------------------------------------------------------- as data


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _row(figures: TeamFigures) -> dict[str, Any]:
    row: dict[str, Any] = {"team": figures.team or NO_SITE}
    for f in fields(figures):
        if f.name != "team":
            value = getattr(figures, f.name)
            row[f.name] = value if isinstance(value, int) else _text(value)
    row["net_revenue_change"] = _text(figures.net_revenue_change)
    rate = figures.net_revenue_change_rate
    row["net_revenue_change_rate"] = None if rate is None else f"{rate:+.2f}%"
    return row


def _change(change: StaffChange) -> dict[str, Any]:
    data = {f.name: getattr(change, f.name) for f in fields(change)}
    data["team"] = change.team or NO_SITE
    data["position_label"] = POSITION_LABELS.get(change.position, change.position)
    if change.kind:
        data["kind_label"] = LEVEL_CHANGE_KINDS.get(change.kind, change.kind)
        data["from_label"] = LEVEL_LABELS.get(change.from_title, change.from_title or "-")
        data["to_label"] = LEVEL_LABELS.get(change.to_title, change.to_title)
    return data


def _closing(report: MonthReport) -> dict[str, Any]:
    return {"month": report.month, "revision": report.revision,
            "pay_serial": report.pay_serial, "pas_serial": report.pas_serial,
            "rpt_serial": report.rpt_serial}


def _notes(total: TeamFigures, teams: Sequence[TeamFigures], *, joins: int, leaves: int,
           levels: int, previous: str | None) -> list[str]:
    """The analysis (分析说明) a person reads first."""
    notes = [f"净创收合计 {total.net_revenue:.2f} 元；新开户 {total.accounts_opened} 户，其中"
             f"有效户 {total.valid_accounts} 户，新开有效户市值 {total.new_value:.2f} 元。"]
    change = total.net_revenue_change
    if change is not None:
        rate = total.net_revenue_change_rate
        notes.append(f"较{previous}净创收{'增加' if change >= 0 else '减少'} {abs(change):.2f}"
                     f" 元" + (f"（{rate:+.2f}%）" if rate is not None else "") + "。")
    elif previous:
        notes.append(f"{previous}未结账，无环比数据。")
    if teams:
        best = max(teams, key=lambda t: t.net_revenue)
        notes.append(f"净创收最高的团队：{best.team or NO_SITE}（{best.net_revenue:.2f} 元）。")
    notes.append(f"人员变动：入职 {joins} 人，离职 {leaves} 人，职级变动 {levels} 人次。")
    return notes


def report_json(report: MonthReport | PeriodReport) -> dict[str, Any]:
    """The report as JSON-ready data: money as two-decimal strings, a figure without a base
    (last month not closed) as None, which documents show as —."""
    if isinstance(report, MonthReport):
        period = parse_period(report.month)
        months, missing, closings = [report.month], [], [_closing(report)]
        previous = str(Month.parse(report.month).minus(1))
        extra: dict[str, Any] = {"previous_month": previous,
                                 "previous_closed": report.previous_closed,
                                 "revision": report.revision, "pay_serial": report.pay_serial,
                                 "pas_serial": report.pas_serial, "policy": report.policy}
        notes = _notes(report.total, report.teams, joins=len(report.joins),
                       leaves=len(report.leaves), levels=len(report.level_changes),
                       previous="上月")
    else:
        period, months = report.period, [r.month for r in report.months]
        missing, closings = list(report.missing), [_closing(r) for r in report.months]
        extra = {}
        notes = [f"已结账 {len(months)} 个月" + (f"，未结账 {len(missing)} 个月："
                                                 f"{'、'.join(missing)}" if missing else "")
                 + "。"] + _notes(report.total, report.teams, joins=len(report.joins),
                                 leaves=len(report.leaves), levels=len(report.level_changes),
                                 previous=None)
    return {"branch": report.branch, "kind": period.kind, "period": period.text,
            "period_label": period.label, **extra, "months": months, "missing_months": missing,
            "closings": closings, "teams": [_row(t) for t in report.teams],
            "total": _row(report.total),
            "payroll": {"gross": _text(report.total.gross),
                        "net_pay": _text(report.total.net_pay),
                        "risk_fund_withheld": _text(report.total.risk_fund_withheld)},
            "joins": [_change(c) for c in report.joins],
            "leaves": [_change(c) for c in report.leaves],
            "level_changes": [_change(c) for c in report.level_changes], "notes": notes}


def report_subject(report: MonthReport | PeriodReport) -> str:
    """The archive subject: ``2026-10 营业部业务月报``, ``2026H1 营业部半年度业务报告``."""
    if isinstance(report, MonthReport):
        return f"{report.month} 营业部业务月报"
    kind = "半年度" if report.period.kind == "half" else "年度"
    return f"{report.period.text} 营业部{kind}业务报告（{report.period.label}）"


def document_data(report: MonthReport | PeriodReport) -> dict[str, Any]:
    """What ``RPT.html`` renders (``brokerflow render RPT --data`` takes the same shape)."""
    title = ("营业部业务月报" if isinstance(report, MonthReport) else
             "营业部半年度业务报告" if report.period.kind == "half" else "营业部年度业务报告")
    return {"branch": report.branch, "subject": report_subject(report), "title": title,
            "body": report_json(report), "signatures": []}
