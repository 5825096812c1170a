"""Cells a spreadsheet never evaluates: CSV written for people (payroll sheets, evaluation
results, the auditors' manifest) holds no formula.  Pure."""

from __future__ import annotations

import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet would evaluate ``text`` typed into a cell (a plain number such
    as ``-12.50`` is data, not a formula)."""
    return text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text)


def sheet_text(value: Any) -> Any:
    """``value`` for a CSV cell: a formula-like text gets a leading ``'`` so it stays text."""
    return "'" + value if isinstance(value, str) and is_formula_like(value) else value
