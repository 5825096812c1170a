"""Tables of staff lifecycle II (SPEC §8.3): pay-rules versions, risk-fund movements and the
client dispute/incident register.  (The closing's own tables are in ``models``.)"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, UniqueConstraint
from sqlalchemy import Text as SAText
from sqlmodel import Field, SQLModel

from brokerflow.kernel.calendar import utcnow


class PayRulesVersion(SQLModel, table=True):
    """A branch's pay rules (团队薪酬办法, seed 002 第二条): the policy TOML a ``pay_rules``
    filing carries.  ``pending`` while its chain runs; ``active`` (with the next ``version``
    number of the branch) once approved, from ``effective_month`` on; ``rejected`` or
    ``withdrawn`` otherwise.  The policy text is never edited."""

    __table_args__ = (UniqueConstraint("branch", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    filing_id: int = Field(foreign_key="filing.id", unique=True)
    effective_month: str = Field(max_length=7)
    policy: str = Field(sa_column=Column(SAText, nullable=False))
    sha256: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16, index=True)
    version: int | None = None  # numbered on approval: 1, 2, … per branch
    filing_serial: str = Field(default="", max_length=40)  # the FIL that carried it
    result_serial: str = Field(default="", max_length=40)  # the FOP that approved it
    approved_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class RiskFundMovement(SQLModel, table=True):
    """A deduction from (seed 001 第二十五条 1–5) or the refund of a CM's risk fund (风险基金),
    signed through its chain and archived as RFD; an approved movement is applied by the next
    closing of the branch (``applied_month``)."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)  # deduction|refund
    cause: str = Field(default="", max_length=32)  # a deduction's cause (one of five)
    amount: str = Field(max_length=32)  # yuan, two decimals
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    leave_date: date | None = None  # a refund: the CM's leave date
    due_date: date | None = None  # a refund: leave date + 6 months
    proposed_by: str = Field(max_length=64)
    status: str = Field(default="waiting", max_length=16, index=True)
    rfd_serial: str = Field(default="", max_length=40)
    applied_month: str = Field(default="", max_length=7)  # the closing that applied it
    flow_run_id: str | None = Field(default=None, max_length=64)
    form_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ClientDispute(SQLModel, table=True):
    """A client dispute or incident (客户纠纷/责任事故) recorded against a CM by the trading
    dept; while open it blocks the refund of the CM's risk fund."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    kind: str = Field(default="dispute", max_length=16)  # dispute|incident
    description: str = Field(sa_column=Column(SAText, nullable=False))
    opened_by: str = Field(max_length=64)
    opened_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="open", max_length=16, index=True)  # open|cleared
    cleared_by: str = Field(default="", max_length=64)
    cleared_at: datetime | None = None
    clearing_note: str = Field(default="", sa_column=Column(SAText, nullable=False,
                                                            default=""))
