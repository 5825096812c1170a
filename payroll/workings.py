"""The workings of a pay line (SPEC §9, the payslip PSL): small expression objects.

``compute_payroll`` builds each line item from these objects and takes its number from them
(``Item.value``), so the formula a payslip prints (``Item.working()``) is the computation
that was made, e.g. 提成 = 净创收 52,340.12 × 提成基数 0.25 × 考核系数 0.9500 = 9,944.62.
Values fold left to right in the order the terms are given (Decimal arithmetic is exact here
up to 28 digits, as the engine's).  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

CENT = Decimal("0.01")
SCORE_STEP = Decimal("0.0001")
ZERO = Decimal("0")
Format = Literal["money", "score", "plain"]
#: Binding of the place an expression is printed in: 0 top or a sum's added term,
#: 1 a subtracted term or a factor, 2 a divisor.
TOP, OPERAND, DIVISOR = 0, 1, 2


def money(value: Decimal) -> Decimal:
    """``value`` rounded half-up to 0.01; a zero is always ``0.00``, never ``-0.00``."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else rounded.copy_abs()


def score4(value: Decimal) -> Decimal:
    """``value`` rounded half-up to 0.0001; a zero is always ``0.0000``."""
    rounded = value.quantize(SCORE_STEP, rounding=ROUND_HALF_UP)
    return rounded if rounded else rounded.copy_abs()


def shown(value: Decimal, fmt: Format = "money") -> str:
    """How a payslip prints ``value``: money 12,345.60, score 0.9500, else plainly (0.25)."""
    if fmt == "money":
        return f"{value:,.2f}"
    if fmt == "score":
        return f"{value:.4f}"
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


class Expr(Protocol):
    """A computed amount and how it was computed."""

    @property
    def value(self) -> Decimal: ...

    def text(self, binding: int = TOP) -> str: ...


@dataclass(frozen=True)
class Term:
    """An input: ``label`` and its value (a rate, a count, an amount from the data)."""

    label: str
    value: Decimal
    fmt: Format = "money"

    def text(self, binding: int = TOP) -> str:
        number = shown(self.value, self.fmt)
        return f"{self.label} {number}" if self.label else number


def _fold(steps: tuple[tuple[str, Expr], ...]) -> Decimal:
    value = steps[0][1].value
    for op, expr in steps[1:]:
        if op == "×":
            value = value * expr.value
        elif op == "÷":
            value = value / expr.value
        elif op == "+":
            value = value + expr.value
        elif op == "−":
            value = value - expr.value
        else:
            raise ValueError(f"unknown operator {op!r}")
    return value


@dataclass(frozen=True)
class Product:
    """``a × b ÷ c …``: steps (operator, expression), the first with operator ``""``."""

    steps: tuple[tuple[str, Expr], ...]
    value: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _fold(self.steps))

    def text(self, binding: int = TOP) -> str:
        parts = [self.steps[0][1].text(OPERAND)]
        parts += [f"{op} {expr.text(DIVISOR if op == '÷' else OPERAND)}"
                  for op, expr in self.steps[1:]]
        text = " ".join(parts)
        return f"({text})" if binding >= DIVISOR else text


@dataclass(frozen=True)
class Sum:
    """``a + b − c …``: steps (operator, expression), the first with operator ``""``."""

    steps: tuple[tuple[str, Expr], ...]
    value: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _fold(self.steps))

    def text(self, binding: int = TOP) -> str:
        parts = [self.steps[0][1].text(TOP)]
        parts += [f"{op} {expr.text(OPERAND if op == '−' else TOP)}"
                  for op, expr in self.steps[1:]]
        text = " ".join(parts)
        return f"({text})" if binding >= OPERAND else text


@dataclass(frozen=True)
class Extreme:
    """``min(a, b, …)`` or ``max(a, b, …)`` (the first of equal values, as Python's)."""

    kind: Literal["min", "max"]
    args: tuple[Expr, ...]
    value: Decimal = field(init=False)

    def __post_init__(self) -> None:
        pick = min if self.kind == "min" else max
        object.__setattr__(self, "value", pick(a.value for a in self.args))

    def text(self, binding: int = TOP) -> str:
        return f"{self.kind}({', '.join(a.text(TOP) for a in self.args)})"


@dataclass(frozen=True)
class Rounded:
    """``inner`` rounded half-up to 0.01 -- or, ``fmt`` "score", to 0.0001 (printed as the
    inner computation)."""

    inner: Expr
    fmt: Format = "money"
    value: Decimal = field(init=False)

    def __post_init__(self) -> None:
        round_to = score4 if self.fmt == "score" else money
        object.__setattr__(self, "value", round_to(self.inner.value))

    def text(self, binding: int = TOP) -> str:
        return self.inner.text(binding)


def product(*factors: Expr) -> Product:
    return Product(tuple(("×" if i else "", f) for i, f in enumerate(factors)))


def total(first: Expr, *rest: tuple[str, Expr]) -> Sum:
    return Sum((("", first), *rest))


@dataclass(frozen=True)
class Item:
    """A line item: ``code`` (the PayLine field), its Chinese ``label`` and how it was
    computed; ``value`` is ``expr``'s, rounded to 0.01 when ``rounded``.  ``opening``: for
    carried state, the value carried in.  Used inside another item it reads as
    ``label value``."""

    code: str
    label: str
    expr: Expr
    rounded: bool = True
    opening: Decimal | None = None
    fmt: Format = "money"  # how its value prints ("score": a 考核系数, 0.0001)
    value: Decimal = field(init=False)

    def __post_init__(self) -> None:
        value = self.expr.value
        object.__setattr__(self, "value", money(value) if self.rounded else value)

    def text(self, binding: int = TOP) -> str:
        return f"{self.label} {shown(self.value, self.fmt)}"

    def formula(self) -> str:
        """The computation: ``净创收 52,340.12 × 提成基数 0.25 × …``."""
        return self.expr.text(TOP)

    def working(self) -> str:
        """``label = computation = value``."""
        return f"{self.label} = {self.formula()} = {shown(self.value, self.fmt)}"


def working_rows(items: tuple[Item, ...]) -> list[dict[str, str | None]]:
    """The items as stored with a closing's line (JSON-ready, money as two decimals)."""
    return [{"code": i.code, "label": i.label, "formula": i.formula(), "text": i.working(),
             "value": f"{i.value:.4f}" if i.fmt == "score" else f"{i.value:.2f}",
             "opening": None if i.opening is None else f"{i.opening:.2f}"} for i in items]
