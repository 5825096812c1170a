"""Which characters of a document the document fonts cannot draw (SPEC §9: never an empty box).

Pure functions over *coverage*: the code points the fonts have glyphs for, held as sorted,
merged ``(first, last)`` ranges (fontconfig's charset notation, ``"20-7e a0-ff 3000"``).
``kernel.render`` builds the coverage once per process from the installed font files and
checks each document's text here before WeasyPrint draws it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from brokerflow.kernel.errors import BadInput

#: Tags and comments of an HTML page: what is left (unescaped) is the text a reader sees,
#: together with the CSS of <style> (ASCII, and the page footer's Chinese words).
_MARKUP = re.compile(r"<!--.*?-->|<[^>]*>", re.DOTALL)
#: Variation selectors (standardized and ideographic): they choose a glyph, they have none.
_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
#: CJK blocks ``brokerflow doctor`` reports on (first, last assigned code point).
CJK_EXTENSIONS = {
    "Extension A": (0x3400, 0x4DBF),
    "Extension B": (0x20000, 0x2A6DF),
}


@dataclass(frozen=True)
class Coverage:
    """Code points with a glyph, as sorted disjoint ``(first, last)`` ranges."""

    ranges: tuple[tuple[int, int], ...]
    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(first for first, _ in self.ranges))

    def __contains__(self, code_point: object) -> bool:
        if not isinstance(code_point, int):
            return False
        i = bisect_right(self.starts, code_point) - 1
        return i >= 0 and self.ranges[i][1] >= code_point

    def count(self, first: int, last: int) -> int:
        """How many code points of ``first..last`` are covered."""
        return sum(max(0, min(b, last) - max(a, first) + 1) for a, b in self.ranges)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Coverage:
    """Union of ranges (overlapping or adjacent ones joined)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return Coverage(tuple(merged))


def parse_charset(text: str) -> Iterator[tuple[int, int]]:
    """Ranges of fontconfig's charset notation: hex code points and ranges, space separated."""
    for part in text.split():
        first, _, last = part.partition("-")
        yield int(first, 16), int(last or first, 16)


def needs_glyph(char: str) -> bool:
    """Whether a character is drawn: spaces, controls, format characters and variation
    selectors are laid out without a glyph of their own."""
    if char.isspace():
        return False
    code_point = ord(char)
    if any(a <= code_point <= b for a, b in _SELECTORS):
        return False
    return unicodedata.category(char) not in ("Cc", "Cf")


def missing_characters(text: str, coverage: Coverage) -> list[str]:
    """The distinct characters of ``text`` that need a glyph and have none, in text order."""
    lacking = {c for c in set(text) if ord(c) not in coverage and needs_glyph(c)}
    if not lacking:
        return []
    return sorted(lacking, key=text.index)


def html_text(page: str) -> str:
    """The text of an HTML page (markup removed, character references resolved)."""
    return html.unescape(_MARKUP.sub(" ", page))


def code_point(char: str) -> str:
    """``U+4DAE``, ``U+20000``: a character's code point as Unicode writes it."""
    return f"U+{ord(char):04X}"


def field_holding(data: Any, char: str, path: str = "") -> str | None:
    """Dotted path of the first string in ``data`` (dicts, lists, strings) holding ``char``."""
    if isinstance(data, str):
        return (path or None) if char in data else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = field_holding(value, char, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


class MissingGlyph(BadInput):
    """(render) A character no document font can draw: refused, it would print as a box."""

    def __init__(self, chars: list[str], document: str, where: str | None = None) -> None:
        self.chars = chars
        self.document = document
        listed = ", ".join(f"'{c}' ({code_point(c)})" for c in chars)
        noun = "character has" if len(chars) == 1 else "characters have"
        super().__init__(f"{document}: {noun} no glyph in the document fonts and would "
                         f"print as an empty box: {listed}", column=where)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.chars, self.document, self.column)
