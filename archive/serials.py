"""Serial numbers (流水号): ``<BRANCH>-<TYPE>-<YYYY>-<NNNNNN>``.  Pure rules, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import check_branch
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES, check_doc_type

MAX_NUMBER = 999_999
SERIAL_PATTERN = re.compile(r"^([A-Z][A-Z0-9]{1,7})-([A-Z]{3})-(\d{4})-(\d{6})$")


@dataclass(frozen=True, order=True)
class Serial:
    branch: str
    doc_type: str
    year: int
    number: int

    def __str__(self) -> str:
        return format_serial(self.branch, self.doc_type, self.year, self.number)

    @property
    def object_key(self) -> str:
        """Where the PDF lives in the bucket: ``<branch>/<type>/<yyyy>/<serial>.pdf``."""
        return f"{self.branch}/{self.doc_type}/{self.year:04d}/{self}.pdf"


def format_serial(branch: str, doc_type: str, year: int, number: int) -> str:
    """``SZ01-PAY-2026-000042``; BadInput for numbers outside 1..999999 or a year that does
    not have four digits."""
    check_branch(branch)
    check_doc_type(doc_type)
    if not 1 <= number <= MAX_NUMBER:
        raise BadInput(f"serial number {number} outside 1..{MAX_NUMBER}", column="number")
    if not 1000 <= year <= 9999:
        raise BadInput(f"year {year} must have four digits", column="year")
    return f"{branch}-{doc_type}-{year:04d}-{number:06d}"


def parse_serial(text: str) -> Serial:
    """The parts of a serial; BadInput when it is not one."""
    match = SERIAL_PATTERN.match(text.strip())
    if not match or match.group(2) not in DOCUMENT_TYPES or int(match.group(4)) == 0:
        raise BadInput(
            f"{text!r} is not a serial number like SZ01-PAY-2026-000042", column="SERIAL"
        )
    branch, doc_type, year, number = match.groups()
    return Serial(branch, doc_type, int(year), int(number))
