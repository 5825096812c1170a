"""The branch's payroll policy (TOML, SPEC §6.2), read as exact decimals and validated."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.resources import package_dir
from brokerflow.kernel.vocabulary import LEVEL_ORDER

LEVELS = LEVEL_ORDER  # trainee < assistant < manager < senior < chief
POSITIONS = ("cm", "stationed", "regional")
DEFAULT_POLICY = package_dir("brokerflow.policy") / "default.toml"

RATE_KEYS = ("tax_surcharge_rate", "regulatory_fee_rate", "fund_commission_rate",
             "unqualified_factor", "excess_award_rate", "management_commission_rate")
AMOUNT_KEYS = ("valid_account_min_amount", "opening_bonus_per_account",
               "excess_award_monthly_cap")
POSITIVE_KEYS = ("working_days_per_month",)
COUNT_KEYS = ("institution_weight", "unqualified_after_months", "trainee_months",
              "retention_years")
LEVEL_KEYS = ("min_avg_assets", "fixed_pay", "commission_base", "target_valid",
              "target_new_value", "target_net_revenue", "value_standard", "transport_allowance")
TARGET_KEYS = ("target_valid", "target_new_value", "target_net_revenue")
POSITION_KEYS = ("management_allowance", "risk_fund_cap")
#: Optional amounts with their defaults (SPEC §8.1: seed 001 第二十七条4's fine per account).
OPTIONAL_AMOUNTS = {"malicious_fine_per_account": Decimal("500")}


@dataclass(frozen=True)
class LevelPolicy:
    name: str
    min_avg_assets: Decimal
    fixed_pay: Decimal
    commission_base: Decimal
    target_valid: Decimal
    target_new_value: Decimal
    target_net_revenue: Decimal
    value_standard: Decimal
    transport_allowance: Decimal


@dataclass(frozen=True)
class PositionPolicy:
    name: str
    management_allowance: Decimal
    risk_fund_cap: Decimal


@dataclass(frozen=True)
class Policy:
    tax_surcharge_rate: Decimal
    regulatory_fee_rate: Decimal
    working_days_per_month: Decimal
    valid_account_min_amount: Decimal
    institution_weight: int
    opening_bonus_per_account: Decimal
    fund_commission_rate: Decimal
    unqualified_after_months: int
    unqualified_factor: Decimal
    trainee_months: int
    excess_award_rate: Decimal
    excess_award_monthly_cap: Decimal
    management_commission_rate: Decimal
    retention_years: int
    levels: dict[str, LevelPolicy]
    positions: dict[str, PositionPolicy]
    malicious_fine_per_account: Decimal = OPTIONAL_AMOUNTS["malicious_fine_per_account"]


MAX_POLICY_NUMBER = Decimal(10) ** 12  # no rate, amount or count of a branch comes near it


def _decimal(value: Any, *, file: str, key: str) -> Decimal:
    if isinstance(value, bool):
        raise BadInput(f"{key} must be a number, not {value!r}", file=file, column=key)
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise BadInput(f"{key} must be a number, not {value!r}", file=file, column=key) from None
    if not number.is_finite():
        raise BadInput(f"{key} must be a finite number", file=file, column=key)
    if abs(number) > MAX_POLICY_NUMBER:
        raise BadInput(f"{key} is out of range (at most {MAX_POLICY_NUMBER:,})", file=file,
                       column=key)
    return number


def _table(data: dict[str, Any], name: str, keys: tuple[str, ...], *, file: str,
           prefix: str) -> dict[str, Decimal]:
    missing = [k for k in keys if k not in data]
    if missing:
        raise BadInput(f"[{prefix}.{name}] lacks {missing[0]}", file=file,
                       column=f"{prefix}.{name}.{missing[0]}")
    extra = sorted(set(data) - set(keys))
    if extra:
        raise BadInput(f"[{prefix}.{name}] has unknown key {extra[0]} = {data[extra[0]]!r}",
                       file=file,
                       column=f"{prefix}.{name}.{extra[0]}")
    values = {k: _decimal(data[k], file=file, key=f"{prefix}.{name}.{k}") for k in keys}
    for k, v in values.items():
        if v < 0:
            raise BadInput(f"{prefix}.{name}.{k} must not be negative, not {v}", file=file,
                           column=f"{prefix}.{name}.{k}")
    return values


def parse_policy(text: str, *, file: str) -> Policy:
    """A validated policy from TOML text: every key present, rates and amounts ≥ 0,
    targets > 0, exactly the five levels and three positions."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"not valid TOML: {exc}", file=file) from None
    scalars: dict[str, Any] = {}
    for key in RATE_KEYS + AMOUNT_KEYS + POSITIVE_KEYS + COUNT_KEYS:
        if key not in data:
            raise BadInput(f"missing key {key}", file=file, column=key)
        value = _decimal(data[key], file=file, key=key)
        if value < 0:
            raise BadInput(f"{key} must not be negative, not {value}", file=file, column=key)
        if key in POSITIVE_KEYS and value <= 0:
            raise BadInput(f"{key} must be greater than 0, not {value}", file=file, column=key)
        if key in COUNT_KEYS:
            if value != value.to_integral_value():
                raise BadInput(f"{key} must be a whole number", file=file, column=key)
            scalars[key] = int(value)
        else:
            scalars[key] = value
    for key in OPTIONAL_AMOUNTS:
        if key in data:
            value = _decimal(data[key], file=file, key=key)
            if value < 0:
                raise BadInput(f"{key} must not be negative", file=file, column=key)
            scalars[key] = value
    known = (set(RATE_KEYS + AMOUNT_KEYS + POSITIVE_KEYS + COUNT_KEYS) | set(OPTIONAL_AMOUNTS)
             | {"levels", "positions"})
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInput(f"unknown key {unknown[0]} = {data[unknown[0]]!r}", file=file,
                       column=unknown[0])
    levels_data = data.get("levels")
    if not isinstance(levels_data, dict):
        raise BadInput("missing [levels.*] tables", file=file, column="levels")
    for name in levels_data:
        if name not in LEVELS:
            raise BadInput(f"unknown level {name!r}; levels are {', '.join(LEVELS)}", file=file,
                           column=f"levels.{name}")
    levels = {}
    for name in LEVELS:
        if name not in levels_data:
            raise BadInput(f"missing [levels.{name}]", file=file, column=f"levels.{name}")
        values = _table(levels_data[name], name, LEVEL_KEYS, file=file, prefix="levels")
        for k in TARGET_KEYS:
            if values[k] <= 0:
                raise BadInput(f"levels.{name}.{k} must be greater than 0, not {values[k]}",
                               file=file,
                               column=f"levels.{name}.{k}")
        levels[name] = LevelPolicy(name=name, **values)
    positions_data = data.get("positions")
    if not isinstance(positions_data, dict):
        raise BadInput("missing [positions.*] tables", file=file, column="positions")
    for name in positions_data:
        if name not in POSITIONS:
            raise BadInput(f"unknown position {name!r}; positions are {', '.join(POSITIONS)}",
                           file=file, column=f"positions.{name}")
    positions = {}
    for name in POSITIONS:
        if name not in positions_data:
            raise BadInput(f"missing [positions.{name}]", file=file, column=f"positions.{name}")
        values = _table(positions_data[name], name, POSITION_KEYS, file=file,
                        prefix="positions")
        positions[name] = PositionPolicy(name=name, **values)
    return Policy(levels=levels, positions=positions, **scalars)


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("no such file", file=str(path)) from None
    return parse_policy(text, file=str(path))
