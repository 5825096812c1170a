"""A closing checks itself (SPEC §10): its counts against the CRM export's.  Pure.

``ClientTally`` wraps the closing's per-row counting rule, so the month's CRM rows are tallied
per CM in the one pass that computes the pay (clients, rows the CRM marks attributed, rows the
database's attributions counted).  ``closing_discrepancies`` turns the tallies, the staff file,
the roster and the branch's closing history into the discrepancies PAY and the sign-off show.
Discrepancies never stop a closing: the signers judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.ordering import natural_key
from brokerflow.kernel.vocabulary import STATUS_LABELS
from brokerflow.payroll.inputs import ClientRow

#: Accounts named in one message; the rest are counted.
SAMPLE = 5

NO_EFFECTIVE = "no_effective_attribution"
MISMATCH = "attribution_mismatch"
NOT_ON_ROSTER = "staff_not_on_roster"
NOT_IN_STAFF = "roster_not_in_staff"
PREVIOUS_OPEN = "previous_month_open"
LATER_CLOSED = "later_month_closed"

#: Kinds in the order a signer reads them, with the label PAY shows.
KIND_LABELS: dict[str, str] = {
    NO_EFFECTIVE: "无已生效归属",
    MISMATCH: "归属户数不符",
    NOT_ON_ROSTER: "花名册无此人",
    NOT_IN_STAFF: "员工表无此人",
    PREVIOUS_OPEN: "上月未结账",
    LATER_CLOSED: "后续月份已结账",
}
_ORDER = {kind: number for number, kind in enumerate(KIND_LABELS)}


@dataclass(slots=True)
class CmTally:
    """One CM's client rows of the closing month."""

    clients: int = 0  # rows of the CM in the CRM export
    crm_attributed: int = 0  # marked attribution_effective and not malicious by the CRM
    counted: int = 0  # counted by the database's effective attributions
    crm_only: int = 0  # attributed by the CRM, not counted by the database
    db_only: int = 0  # counted by the database, not attributed by the CRM
    crm_only_accounts: list[str] = field(default_factory=list)  # the first SAMPLE
    db_only_accounts: list[str] = field(default_factory=list)


class ClientTally:
    """Per-CM tallies of ``month``'s client rows, collected while the pay is computed."""

    def __init__(self, month: str) -> None:
        self.month = month
        self.by_cm: dict[str, CmTally] = {}

    def counting(self, counts: Callable[[ClientRow], bool]) -> Callable[[ClientRow], bool]:
        """``counts`` that also tallies each row of the month it is asked about."""
        month, by_cm = self.month, self.by_cm

        def counted(row: ClientRow) -> bool:
            result = counts(row)
            if row.month != month:
                return result
            tally = by_cm.get(row.cm_id)
            if tally is None:
                tally = by_cm[row.cm_id] = CmTally()
            tally.clients += 1
            crm = row.attribution_effective and not row.malicious
            if crm:
                tally.crm_attributed += 1
            if result:
                tally.counted += 1
            if crm and not result:
                tally.crm_only += 1
                if len(tally.crm_only_accounts) < SAMPLE:
                    tally.crm_only_accounts.append(row.client_id)
            elif result and not crm:
                tally.db_only += 1
                if len(tally.db_only_accounts) < SAMPLE:
                    tally.db_only_accounts.append(row.client_id)
            return result

        return counted


@dataclass(frozen=True)
class Discrepancy:
    """One thing the closing's counts disagree on; ``cm_id`` None for the whole branch."""

    kind: str
    cm_id: str | None
    message_zh: str
    message_en: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    def line(self) -> str:
        """One line for a form or a terminal: 【label】cm：message."""
        who = f"{self.cm_id}：" if self.cm_id else ""
        return f"【{self.label}】{who}{self.message_zh}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "cm_id": self.cm_id,
                "message_zh": self.message_zh, "message_en": self.message_en,
                "figures": dict(self.figures)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Discrepancy:
        return cls(kind=str(data.get("kind", "")), cm_id=data.get("cm_id"),
                   message_zh=str(data.get("message_zh", "")),
                   message_en=str(data.get("message_en", "")),
                   figures=dict(data.get("figures") or {}))


def _accounts(sample: list[str], count: int) -> str:
    shown = ", ".join(sample)
    return shown + (", …" if count > len(sample) else "")


def _attribution_checks(cm_id: str, tally: CmTally) -> Discrepancy | None:
    figures = {"crm_clients": tally.clients, "crm_attributed": tally.crm_attributed,
               "counted": tally.counted, "crm_only": tally.crm_only,
               "db_only": tally.db_only, "crm_only_accounts": list(tally.crm_only_accounts),
               "db_only_accounts": list(tally.db_only_accounts)}
    if tally.clients and not tally.counted:
        return Discrepancy(
            NO_EFFECTIVE, cm_id,
            f"CRM 导出本月客户 {tally.clients} 户（CRM 记为归属 {tally.crm_attributed} 户），"
            "本系统无已生效归属，本月有效户按 0 计",
            f"{tally.clients} CRM clients ({tally.crm_attributed} attributed by the CRM) but "
            "no effective attribution in the database: valid accounts count as 0",
            figures)
    if not tally.crm_only and not tally.db_only:
        return None
    zh = f"CRM 记为归属 {tally.crm_attributed} 户，本系统已生效归属 {tally.counted} 户"
    en = f"the CRM attributes {tally.crm_attributed} accounts, the database {tally.counted}"
    if tally.crm_only:
        zh += f"；差 {tally.crm_only} 户：{_accounts(tally.crm_only_accounts, tally.crm_only)}"
        en += f"; missing {tally.crm_only}: {_accounts(tally.crm_only_accounts, tally.crm_only)}"
    if tally.db_only:
        zh += (f"；本系统计入而 CRM 未记归属 {tally.db_only} 户："
               f"{_accounts(tally.db_only_accounts, tally.db_only)}")
        en += (f"; counted but not attributed by the CRM {tally.db_only}: "
               f"{_accounts(tally.db_only_accounts, tally.db_only)}")
    return Discrepancy(MISMATCH, cm_id, zh, en, figures)


def _month_checks(month: str, history: Mapping[str, str]) -> list[Discrepancy]:
    closed = sorted(m for m, status in history.items() if status == "closed")
    found = []
    previous = str(Month.parse(month).minus(1))
    earlier = [m for m in closed if m < month]
    if earlier and previous not in closed:
        status = history.get(previous)
        shown = f"（{STATUS_LABELS.get(status, status)}）" if status else ""
        found.append(Discrepancy(
            PREVIOUS_OPEN, None,
            f"上月 {previous} 未结账{shown}，本营业部已结账至 {earlier[-1]}；月份应依次结账，"
            "本月按已有的结转状态计算",
            f"{previous} is not closed ({status or 'never computed'}) while {earlier[-1]} is: "
            "months are closed in order; this month starts from the carried state there is",
            {"previous_month": previous, "previous_status": status or "",
             "last_closed": earlier[-1]}))
    later = [m for m in closed if m > month]
    if later:
        found.append(Discrepancy(
            LATER_CLOSED, None,
            f"后续月份 {'、'.join(later)} 已先于本月结账；本月签批完成后这些月份将重开，"
            "须按月依次重新结账",
            f"later months {', '.join(later)} were closed before this one; once this month "
            "is signed they are reopened and must be closed again in order",
            {"later_closed": later}))
    return found


def closing_discrepancies(
    *, month: str, tallies: Mapping[str, CmTally] | None, staff_ids: Iterable[str],
    roster_ids: Iterable[str], history: Mapping[str, str],
) -> list[Discrepancy]:
    """Every discrepancy of ``month``'s closing, in reading order.

    ``tallies``: per CM (None when the CRM's own attribution column is counted: nothing to
    compare); ``staff_ids``: the month's staff file; ``roster_ids``: the branch's CMs, stationed
    and regional managers on the roster; ``history``: month → status of the branch's other
    months' latest closing."""
    found: list[Discrepancy] = []
    for cm_id, tally in (tallies or {}).items():
        checked = _attribution_checks(cm_id, tally)
        if checked is not None:
            found.append(checked)
    staff, roster = set(staff_ids), set(roster_ids)
    found += [Discrepancy(NOT_ON_ROSTER, cm_id,
                          "员工表本月有此人，本营业部花名册无此客户经理；本月照常计薪，请核对花名册",
                          "on the staff file but not on the branch's roster: paid as listed")
              for cm_id in staff - roster]
    found += [Discrepancy(NOT_IN_STAFF, cm_id,
                          "花名册在册，员工表本月无此人；本月不计薪",
                          "on the roster but not on the month's staff file: not paid")
              for cm_id in roster - staff]
    found += _month_checks(month, {m: s for m, s in history.items() if m != month})
    return sorted(found, key=lambda d: (_ORDER.get(d.kind, len(_ORDER)),
                                        natural_key(d.cm_id or ""), d.message_zh))
