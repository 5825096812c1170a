"""Tables of going live at a branch (SPEC §10): an opening import batch (the branch's existing
attributions, or its opening carried state) and the opening carried state it approved."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlalchemy import Text as SAText
from sqlmodel import Field, SQLModel

from brokerflow.kernel.calendar import utcnow


class OpeningImport(SQLModel, table=True):
    """One imported file, signed as one batch (trading dept manager, then branch manager).

    ``rows`` is the validated rows as JSON: a client's ID number only as its keyed hash and
    last four characters, never in clear.  ``waiting`` until the chain ends; then
    ``approved`` (applied), ``rejected`` (also when a conflict appeared while it waited:
    ``note`` says which) or ``returned`` (the user imports a corrected file)."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    kind: str = Field(max_length=16)  # attributions|state
    status: str = Field(default="waiting", index=True, max_length=16)
    sha256: str = Field(max_length=64)  # of the file as imported
    file_name: str = Field(max_length=255)
    rows: str = Field(sa_column=Column(SAText, nullable=False))
    row_count: int = 0
    submitted_by: str = Field(max_length=64)
    list_serial: str = Field(default="", max_length=40)  # the archived import list (CNF)
    record_serial: str = Field(default="", max_length=40)  # the signed record (CNF)
    note: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    flow_run_id: str | None = Field(default=None, max_length=64)
    form_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None


class OpeningCarry(SQLModel, table=True):
    """A CM's carried state as of the last month closed before brokerflow (``as_of``), from
    an approved state import: what the branch's first closing continues from."""

    __table_args__ = (UniqueConstraint("branch", "cm_id"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(max_length=64)
    as_of: str = Field(max_length=7)
    excess_carry: str = Field(default="0.00", max_length=32)
    risk_fund_balance: str = Field(default="0.00", max_length=32)
    title: str | None = Field(default=None, max_length=16)
    ytd_absent_half_days: int = 0
    ytd_personal_leave_days: str = Field(default="0.00", max_length=32)
    import_id: int = Field(foreign_key="openingimport.id")
    created_at: datetime = Field(default_factory=utcnow)
