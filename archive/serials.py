"""Serial numbers (流水号): ``<BRANCH>-<TYPE>-<YYYY>-<NNNNNN>``.  Pure rules, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.roster import BRANCH_PATTERN

#: Document type codes (SPEC §6.1) and their Chinese titles.
DOCUMENT_TYPES: dict[str, str] = {
    "FIL": "请示报批单",
    "FOP": "会签意见回复单",
    "CNF": "客户确认登记表",
    "CML": "客户确认月度清单",
    "PAY": "营业部客户经理薪酬月报表",
    "PAS": "营业部客户经理薪酬月报表（签批）",
    "RPT": "营业部月度业务报表",
    "EXT": "外部文件归档封面",
}

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


def check_branch(branch: str, *, column: str = "--branch") -> str:
    if not BRANCH_PATTERN.match(branch):
        raise BadInput(
            f"branch code {branch!r} must be 2-8 upper-case letters or digits, e.g. SZ01",
            column=column,
        )
    return branch


def check_doc_type(doc_type: str, *, column: str = "--type") -> str:
    if doc_type not in DOCUMENT_TYPES:
        raise BadInput(
            f"unknown document type {doc_type!r}; one of {', '.join(DOCUMENT_TYPES)}",
            column=column,
        )
    return doc_type


def format_serial(branch: str, doc_type: str, year: int, number: int) -> str:
    """``SZ01-PAY-2026-000042``; refuses numbers outside 1..999999."""
    check_branch(branch)
    check_doc_type(doc_type)
    if not 1 <= number <= MAX_NUMBER:
        raise ValueError(f"serial number {number} outside 1..{MAX_NUMBER}")
    if not 1000 <= year <= 9999:
        raise ValueError(f"year {year} must have four digits")
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
