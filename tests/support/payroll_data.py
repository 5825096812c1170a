"""Builders for CRM export directories used by the payroll tests."""

from __future__ import annotations

from typing import Any

from brokerflow.app.sample.crm import write_export
from tests.support.paths import DATA

__all__ = ["MONTH", "POLICY", "approve_pay_rules", "client_row", "staff_row", "write_export"]

POLICY = DATA / "policy_simple.toml"
MONTH = "2026-10"

STAFF_DEFAULTS: dict[str, Any] = {
    "month": MONTH, "name": "客户经理", "position": "cm", "supervisor_id": "", "site": "网点A",
    "hire_date": "2020-01-15", "qualified": "true", "late_count": 0, "personal_leave_days": 0,
    "sick_leave_days": 0, "absent_half_days": 0, "no_event_count": 0,
    "meeting_missed_count": 0, "report_late_count": 0, "dress_count": 0, "off_post_count": 0,
    "complaint_count": 0, "fines": "0", "mainly_ipo_or_fund": "false",
}
CLIENT_DEFAULTS: dict[str, Any] = {
    "month": MONTH, "client_type": "individual", "open_date": "2020-01-01",
    "attribution_effective": "true", "malicious": "false", "purchases": "0", "assets": "0",
    "turnover": "0", "gross_commission": "0", "fund_sales_commission": "0",
}


def staff_row(cm_id: str, **values: Any) -> dict[str, Any]:
    return {**STAFF_DEFAULTS, "cm_id": cm_id, **values}


def client_row(client_id: str, cm_id: str, **values: Any) -> dict[str, Any]:
    return {**CLIENT_DEFAULTS, "client_id": client_id, "cm_id": cm_id, **values}



def approve_pay_rules(engine: Any, *, branch: str = "SZ01", policy: Any = None,
                      effective_month: str = "2000-01") -> int:
    """Opening data for tests that are about something else: ``branch``'s pay rules as if a
    ``pay_rules`` filing had been approved (the chain itself is tested in test_pay_rules).
    Returns the version."""
    from pathlib import Path

    from sqlmodel import Session

    from brokerflow.kernel.models import Filing
    from brokerflow.payroll.pay_rules import attach_pay_rules, settle_pay_rules
    from brokerflow.payroll.policy import DEFAULT_POLICY

    text = Path(policy or DEFAULT_POLICY).read_text(encoding="utf-8")
    with Session(engine) as session:
        filing = Filing(branch=branch, kind="pay_rules", subject="薪酬办法（测试开户数据）",
                        submitter_id="(opening data)", status="approved")
        session.add(filing)
        session.flush()
        assert filing.id is not None
        attach_pay_rules(session, branch=branch, filing_id=filing.id, policy_text=text,
                         effective_month=effective_month)
        rules = settle_pay_rules(session, filing_id=filing.id, outcome="approved",
                                 filing_serial="(opening data)", result_serial="")
        session.commit()
        assert rules is not None and rules.version is not None
        return rules.version
