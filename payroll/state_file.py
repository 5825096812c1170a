"""The opening carried state of a CRM export, ``DIR/state.json`` (SPEC §6.2, §8.1): per CM the
excess-award carry, the risk-fund balance and the §8.1 history, each key checked where it is
read (``BadInput`` naming the CM and the key)."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
from brokerflow.payroll.inputs import MAX_AMOUNT, CarriedState
from brokerflow.payroll.policy import LEVELS


def read_state(path: Path) -> dict[str, CarriedState]:
    """Opening carried state per CM; an absent file means nothing carried."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInput("not UTF-8 text", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg}", file=str(path), row=exc.lineno,
                       column=str(exc.colno)) from None
    if not isinstance(data, dict):
        raise BadInput("expected an object keyed by CM id", file=str(path))
    return {cm_id: parse_state_entry(cm_id, entry, file=str(path))
            for cm_id, entry in data.items()}


STATE_DECIMALS = ("excess_carry", "risk_fund_balance", "prev_score", "ytd_personal_leave_days",
                  "withheld_fixed_pay")
STATE_LEVELS = ("title", "prev_asset_level")
STATE_COUNTS = ("ytd_absent_half_days",)
STATE_KEYS = ("as_of", *STATE_DECIMALS, *STATE_LEVELS, *STATE_COUNTS)


def parse_state_entry(cm_id: str, entry: Any, *, file: str) -> CarriedState:
    """One CM's carried state (SPEC §8.1 types); BadInput naming the CM and key else."""
    if not isinstance(entry, dict):
        raise BadInput(f"{cm_id}: expected an object", file=file, column=cm_id)

    def bad(key: str, problem: str) -> BadInput:
        return BadInput(f"{cm_id}.{key} {problem}", file=file, column=f"{cm_id}.{key}")

    unknown = sorted(set(entry) - set(STATE_KEYS))
    if unknown:
        raise bad(unknown[0], f"is not a state key (known: {', '.join(STATE_KEYS)})")
    values: dict[str, Any] = {"source": entry}
    for key in STATE_DECIMALS:
        raw = entry.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise bad(key, f"must be a decimal string, not {raw!r}")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise bad(key, f"is not a number: {raw!r}") from None
        if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
            raise bad(key, f"must be a number from 0 to {MAX_AMOUNT:,}: {raw!r}")
        values[key] = value
    for key in STATE_LEVELS:
        raw = entry.get(key)
        if raw is None:
            continue
        if raw not in LEVELS:
            raise bad(key, f"is not a level: {raw!r}; levels are {', '.join(LEVELS)}")
        values[key] = raw
    for key in STATE_COUNTS:
        raw = entry.get(key)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.isascii() and raw.isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 10 ** 6:
            raise bad(key, f"must be a whole number 0-999999, not {raw!r}")
        values[key] = raw
    as_of = entry.get("as_of")
    if as_of is not None:
        try:
            values["as_of"] = str(Month.parse(as_of if isinstance(as_of, str) else ""))
        except ValueError:
            raise bad("as_of", f"is not a month (YYYY-MM): {as_of!r}") from None
    return CarriedState(**values)
