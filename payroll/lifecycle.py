"""Titles, levels and the level-change flags of a CM's month (SPEC §8.1; seed 001 第十七–十八条).

Pure: no I/O.  A title (聘任职级) is the level approved by a level change; it caps the level
every pay formula uses.  Flags only propose: titles never change inside ``payroll compute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from brokerflow.kernel.calendar import Month
from brokerflow.kernel.vocabulary import level_rank
from brokerflow.payroll.inputs import CarriedState
from brokerflow.payroll.policy import LEVELS, Policy

LOW_SCORE = Decimal("0.6")
#: Seed 001 第二十九条 (SPEC §8.1): a year's limits, tested on the year-to-date figures.
YEAR_ABSENT_HALF_DAYS_LIMIT = 10  # 5 days of unexcused absence a year: deemed resigned
YEAR_PERSONAL_LEAVE_DAYS_LIMIT = Decimal("20")
TRAINEE = LEVELS[0]


rank = level_rank  # trainee < assistant < manager < senior < chief


def lower(a: str, b: str) -> str:
    """The lower of two levels."""
    return a if rank(a) <= rank(b) else b


def one_below(level: str) -> str:
    """The level one below ``level`` (trainee stays trainee)."""
    return LEVELS[max(0, rank(level) - 1)]


def history_applies(carried: CarriedState, month: Month) -> bool:
    """Whether the carried ``prev_*`` values are the month before ``month`` (a missing
    ``as_of`` means they are)."""
    return carried.as_of is None or carried.as_of == str(month.minus(1))


def year_to_date_applies(carried: CarriedState, month: Month) -> bool:
    """Whether the carried year-to-date figures count for ``month``: written for an earlier
    month of the same year (a January always starts from 0)."""
    written = Month.parse(carried.as_of) if carried.as_of else month.minus(1)
    return written.year == month.year and written.month < month.month


def asset_level(avg_assets: Decimal, *, months_since_hire: int, title: str | None,
                policy: Policy) -> str:
    """The level the assets earn: trainee during the trainee months unless a title above
    trainee was approved (an early conversion); else the highest of assistant…chief whose
    ``min_avg_assets`` is reached (assistant when none is)."""
    if months_since_hire < policy.trainee_months and title in (None, TRAINEE):
        return TRAINEE
    chosen = LEVELS[1]
    for name in LEVELS[1:]:
        if policy.levels[name].min_avg_assets <= avg_assets:
            chosen = name
    return chosen


def paid_level(asset: str, title: str | None) -> str:
    """The level every pay formula uses: the asset level capped by the title; a trainee
    title keeps the trainee level."""
    if title is None:
        return asset
    if title == TRAINEE:
        return TRAINEE
    return lower(asset, title)


@dataclass(frozen=True)
class LevelOutlook:
    """What the month says about the CM's title: flags and the title proposed next."""

    flags: frozenset[str]
    title_next: str | None


def level_outlook(*, title: str | None, asset: str, level: str, prev_asset_level: str | None,
                  prev_score: Decimal | None, score: Decimal, months_since_hire: int,
                  trainee_months: int) -> LevelOutlook:
    """The §8.1 flags ``promotion_eligible``, ``trainee_conversion_due``, ``demotion_due``,
    ``score_demotion_due``, ``termination_right`` and ``title_next``.

    ``prev_asset_level``/``prev_score`` are None when there is no history for the month
    before."""
    flags: set[str] = set()
    targets: list[str] = []
    if (title is not None and prev_asset_level is not None
            and rank(prev_asset_level) > rank(title) and rank(asset) > rank(title)):
        flags.add("promotion_eligible")  # 第十七条: may apply for the next level
    if title == TRAINEE and months_since_hire >= trainee_months:
        flags.add("trainee_conversion_due")
    if (title is not None and title != TRAINEE and prev_asset_level is not None
            and rank(prev_asset_level) < rank(title) and rank(asset) < rank(title)):
        flags.add("demotion_due")  # 第十八条1: to the level the assets reach
        targets.append(asset)
    if (level != TRAINEE and prev_score is not None and prev_score < LOW_SCORE
            and score < LOW_SCORE):
        flags.add("score_demotion_due")  # 第十八条2: one level down
        targets.append(one_below(title or level))
    candidates = ([title] if title is not None else []) + targets
    title_next = min(candidates, key=rank) if candidates else None
    if targets and title_next == TRAINEE:
        flags.add("termination_right")  # 第十八条2: 营业部有权解除聘用关系 — HR decides
    return LevelOutlook(flags=frozenset(flags), title_next=title_next)
