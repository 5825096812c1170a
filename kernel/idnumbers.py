"""Mainland resident ID numbers (GB 11643-1999): validation, masking, keyed hashing.  Pure.

The clear number is only ever held in memory long enough to validate and hash it; what is
stored is ``keyed_hash`` and the last four characters, and documents show ``mask_last4``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


class InvalidIdNumber(ValueError):
    """Why an ID number is not valid (never contains the number itself)."""


def check_digit(first17: str) -> str:
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def validate_id_number(text: str, *, today: date | None = None) -> str:
    """The normalised 18-character number, or InvalidIdNumber saying what is wrong."""
    number = text.strip().upper()
    if len(number) != 18:
        raise InvalidIdNumber(f"must have 18 characters, not {len(number)}")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise InvalidIdNumber("must be 17 digits followed by a digit or X")
    if number[0] == "0":
        raise InvalidIdNumber("the region code cannot start with 0")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("the birth date (characters 7-14) is not a date") from None
    if born.year < 1900 or born > (today or date.today()):
        raise InvalidIdNumber("the birth date (characters 7-14) is out of range")
    if check_digit(number[:17]) != number[17]:
        raise InvalidIdNumber("the check digit (GB 11643) does not match")
    return number


def keyed_hash(number: str, *, key: str) -> str:
    """HMAC-SHA256 of the normalised number: equal numbers match, nobody can reverse it."""
    return hmac.new(key.encode(), number.upper().encode(), hashlib.sha256).hexdigest()


def mask_last4(last4: str) -> str:
    return "*" * 14 + last4
