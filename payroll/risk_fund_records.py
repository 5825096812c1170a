"""Risk-fund movements in the database (SPEC §8.3).  Keyword-only, caller commits.

(Skeleton: filled in by the risk-fund work.)
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from brokerflow.payroll.risk_fund import Movement


def movements_for_closing(session: Session, *, branch: str, month: str) -> list[Movement]:
    """Approved movements the closing of ``month`` applies (not yet applied, or applied by an
    earlier revision of the same month)."""
    return []


def mark_applied(session: Session, *, branch: str, month: str,
                 movements: list[Movement]) -> None:
    """Record that the closing of ``month`` applied ``movements``."""


def movement_rows(session: Session, *, branch: str, month: str) -> list[dict[str, Any]]:
    """The movements applied by the closing of ``month``, as PAY lists them."""
    return []
