"""The risk fund's rules (风险基金, seed 001 第二十五条; SPEC §8.3).  Pure: no I/O.

(Skeleton: the deduction/refund rules are filled in by the risk-fund work.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from brokerflow.payroll.inputs import CarriedState


@dataclass(frozen=True)
class Movement:
    """An approved deduction or refund, as the closing applies it."""

    id: int
    cm_id: str
    kind: str  # deduction|refund
    amount: Decimal


def apply_movements(state: dict[str, CarriedState],
                    movements: Sequence[Movement]) -> dict[str, CarriedState]:
    """The opening state with approved movements applied (skeleton: unchanged)."""
    return dict(state)
