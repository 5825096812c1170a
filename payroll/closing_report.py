"""The closing's figures as its documents show them (SPEC §10): the discrepancies recorded with
a run (``run_discrepancies``), the lines the sign-off form lists (``discrepancy_notes``) and
the 合计 row of PAY (``line_totals``).  Pure: no database session, no Prefect.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from brokerflow.kernel.models import PayrollRun
from brokerflow.payroll.closing_checks import Discrepancy

#: Discrepancies the sign-off form lists before "see PAY".
FORM_DISCREPANCIES = 5


def run_discrepancies(run: PayrollRun) -> list[Discrepancy] | None:
    """The discrepancies recorded with ``run`` (None: a run recorded before closings checked
    themselves)."""
    found = json.loads(run.figures or "{}").get("discrepancies")
    return None if found is None else [Discrepancy.from_dict(d) for d in found]


def discrepancy_notes(run: PayrollRun, *, limit: int = FORM_DISCREPANCIES) -> tuple[str, ...]:
    """What the sign-off form shows before the signature: the count and the first few
    discrepancies (the rest are on PAY), or that the counts agree."""
    found = run_discrepancies(run)
    if found is None:
        return ()
    if not found:
        return (("与CRM导出核对一致，无差异",)
                if json.loads(run.figures).get("attribution_source") == "database"
                else ("归属按CRM导出的归属列计（开发模式），未与本系统归属核对；其他核对无差异",))
    notes = [f"核对差异 {len(found)} 项（详见 PAY {run.pay_serial} 核对差异）："]
    notes += [d.line() for d in found[:limit]]
    if len(found) > limit:
        notes.append(f"…… 另 {len(found) - limit} 项见 PAY")
    return tuple(notes)


#: PAY columns with a 合计 (money as strings with two decimals; valid_accounts a count).
TOTALLED = ("valid_accounts", "fixed_pay", "commission", "gross", "risk_fund_withheld",
            "net_pay")


def line_totals(lines: list[dict[str, Any]]) -> dict[str, str]:
    """The 合计 row of PAY: each ``TOTALLED`` column summed over the lines."""
    sums = {key: sum((Decimal(str(line.get(key) or 0)) for line in lines), Decimal(0))
            for key in TOTALLED}
    return {key: str(int(value)) if key == "valid_accounts" else f"{value:.2f}"
            for key, value in sums.items()}
