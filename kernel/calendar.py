"""Months and moments: ``Month`` (YYYY-MM), quarters (YYYYQn), month ends in the branch's time
zone.  Pure.

Every datetime brokerflow keeps carries its zone: stored in UTC and read back aware
(SQLModel's ``UTCDateTime``: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL), shown in the branch's
zone (``Settings.timezone``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from brokerflow.kernel.errors import BadInput


def utcnow() -> datetime:
    """Now, in UTC, with the zone attached."""
    return datetime.now(UTC)


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def local_minute(at: datetime, zone: ZoneInfo) -> str:
    """``at`` as a person in ``zone`` reads it: ``2026-11-24 14:05``."""
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``2026-10`` → Month(2026, 10); ValueError for anything else."""
        parts = text.split("-")
        if (len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2
                or not all(p.isascii() and p.isdigit() for p in parts)):
            raise ValueError(text)
        year, month = int(parts[0]), int(parts[1])
        if not 1 <= month <= 12:
            raise ValueError(text)
        return cls(year, month)

    @classmethod
    def parse_parameter(cls, text: str, *, column: str = "month") -> Month:
        """``Month.parse`` for a value a person gave (a flow parameter, an option):
        ``BadInput`` naming ``column`` instead of ValueError."""
        try:
            return cls.parse(text)
        except ValueError:
            raise BadInput(f"month must be YYYY-MM (e.g. 2026-10), not {text!r}",
                           column=column) from None

    def minus(self, months: int) -> Month:
        index = self.year * 12 + (self.month - 1) - months
        return Month(index // 12, index % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def month_end(month: str | Month, zone: ZoneInfo) -> datetime:
    """The instant ``month`` ends in ``zone`` (the first moment of the next month), in UTC."""
    m = month if isinstance(month, Month) else Month.parse(month)
    following = m.minus(-1)
    return datetime(following.year, following.month, 1, tzinfo=zone).astimezone(UTC)


def previous_month(now: datetime, zone: ZoneInfo) -> str:
    """The month before the one ``now`` falls in, in ``zone``."""
    local = now.astimezone(zone)
    return str(Month(local.year, local.month).minus(1))


def quarter_months(quarter: str) -> tuple[Month, Month, Month]:
    """``2026Q3`` → its three months (July, August, September); ValueError for anything else."""
    if (len(quarter) != 6 or quarter[4] != "Q" or not quarter[:4].isascii()
            or not quarter[:4].isdigit() or quarter[5] not in "1234"):
        raise ValueError(quarter)
    first = Month(int(quarter[:4]), 3 * (int(quarter[5]) - 1) + 1)
    return first, first.minus(-1), first.minus(-2)


def previous_quarter(now: datetime, zone: ZoneInfo) -> str:
    """The quarter before the one ``now`` falls in, in ``zone`` (``2026Q3`` on 2026-10-01)."""
    local = now.astimezone(zone)
    last = Month(local.year, 3 * ((local.month - 1) // 3) + 1).minus(1)
    return f"{last.year:04d}Q{(last.month - 1) // 3 + 1}"
