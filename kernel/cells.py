"""What a person typed into a spreadsheet cell, as the canonical text the typed readers parse
(SPEC §10: 是/否, Chinese enumeration words, months a spreadsheet turned into dates, dates
written 2026/10/5, amounts with thousands separators), and the problems of a file's rows
gathered into one message.  Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from brokerflow.kernel.errors import BadInput

# --------------------------------------------------------------------------- values (pure)

FLAG_WORDS: dict[str, str] = {
    "true": "true", "false": "false", "是": "true", "否": "false",
    "yes": "true", "no": "false", "y": "true", "n": "false",
}
_MONTH = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:月)?")
_MONTH_AS_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*0?1\s*(?:日)?"
                            r"(?:[ T]0?0:00(?::00)?)?")
_DAY = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*(?:日)?"
                  r"(?:[ T]0?0:00(?::00)?)?")


def flag_text(raw: str) -> str | None:
    """``true``/``false`` for true/false, 是/否 (and yes/no), None for anything else."""
    return FLAG_WORDS.get(raw.strip().lower())


def month_text(raw: str) -> str | None:
    """``YYYY-MM`` for a month as typed (2026-10, 2026/10, 2026年10月) or as a spreadsheet
    turned it into a date (2026-10-01, 2026/10/1, with a midnight time); None otherwise."""
    text = raw.strip()
    match = _MONTH.fullmatch(text) or _MONTH_AS_DATE.fullmatch(text)
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return f"{year:04d}-{month:02d}" if 1 <= month <= 12 else None


def day_text(raw: str) -> str | None:
    """``YYYY-MM-DD`` for a date as typed (2026-10-05, 2026/10/5, 2026年10月5日, with a
    midnight time as spreadsheets add); None when it is not a real date."""
    match = _DAY.fullmatch(raw.strip())
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3))).isoformat()
    except ValueError:
        return None


def choice_text(raw: str, choices: Mapping[str, tuple[str, ...]]) -> str | None:
    """The canonical value an enumeration cell names (its English value, or one of the words
    listed for it, e.g. 个人 → individual); None when it names none."""
    text = raw.strip()
    for value, words in choices.items():
        if text == value or text.lower() == value.lower() or text in words:
            return value
    return None


# --------------------------------------------------------------------------- row problems

#: Row problems named in one message; the rest are counted.
MAX_PROBLEMS = 20
_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")


def plain_number_text(raw: str) -> str:
    """A number as spreadsheets format it for display (``12,000.00``) without its thousands
    separators; any other text unchanged."""
    text = raw.strip()
    return text.replace(",", "") if _GROUPED_NUMBER.fullmatch(text) else raw


class RowProblems:
    """The problems of a file's rows, gathered so that one ``BadInput`` names them all (the
    first ``MAX_PROBLEMS``, the rest counted); the error's row and column are the first's."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[BadInput] = []
        self.count = 0

    def add(self, problem: BadInput) -> None:
        """Remember one row's problem."""
        self.count += 1
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(problem)

    def raise_if_any(self) -> None:
        """Raise the gathered problems (one alone as it was) when there are any."""
        if not self.found:
            return
        first = self.found[0]
        if self.count == 1:
            raise first
        named = "; ".join(
            ", ".join(part for part in (f"row {p.row}" if p.row is not None else "",
                                        f"column {p.column}" if p.column else "") if part)
            + f": {p.problem}" for p in self.found)
        more = self.count - len(self.found)
        raise BadInput(f"{self.count} problems: {named}"
                       + (f"; and {more} more" if more else ""),
                       file=self.file, row=first.row, column=first.column)
