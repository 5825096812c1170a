"""The branch registry's table (SPEC §10): a branch code's full name and the address and
phone that document headers print."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from brokerflow.kernel.calendar import utcnow


class Branch(SQLModel, table=True):
    """One branch office (营业部): its code (as in the roster), full name, address, phone."""

    code: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=64)
    address: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=32)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=64)
