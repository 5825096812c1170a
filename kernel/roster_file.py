"""Reading a roster file (pure, no database): CSV or YAML in UTF-8 or GBK, or XLSX; English
or Chinese headers and role names (``input_columns.ROSTER``).  ``parse_roster`` and
``parse_roster_bytes`` check every line (ids, branches, roles, supervisors, loops in reporting
lines) and give the validated ``RosterRow``s that ``kernel.roster.load_roster`` stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import (
    BRANCH_PATTERN,
    BRANCH_ROLES,
    HEAD_OFFICE,
    HEAD_OFFICE_ROLES,
    KNOWN_ROLES,
    TEAM_ROLES,
    USER_ID_PATTERN,
)
from brokerflow.kernel.input_columns import ROLE_WORDS, ROSTER
from brokerflow.kernel.tables import Table, decode_text, table_of_bytes, table_of_text

ROSTER_COLUMNS = [c.name for c in ROSTER]
#: Roles as a person may write them: the code, or its Chinese name (营业部经理, 财务经理; a
#: name with '/' in either of its halves, e.g. 副经理 for 副经理/经理助理).
ROLE_BY_WORD: dict[str, str] = {
    **{part: role for role, words in ROLE_WORDS.items() for word in words
       for part in word.split("/")},
    **{word: role for role, words in ROLE_WORDS.items() for word in words},
}
#: What separates roles in the roles column: ';' (also full-width '；') or '、'.
ROLE_SEPARATORS = re.compile("[;；、]")


@dataclass(frozen=True)
class RosterRow:
    """One validated roster line; ``secret`` is None when an existing user keeps theirs."""

    row: int
    user_id: str
    name: str
    roles: frozenset[str]
    branch: str
    team: str
    supervisor_id: str | None
    secret: str | None


def parse_roster(
    text: str, *, file: str, known_user_ids: frozenset[str] = frozenset()
) -> list[RosterRow]:
    """Validate a roster file's text (CSV, or YAML when ``file`` ends in .yaml/.yml)."""
    if file.lower().endswith((".yaml", ".yml")):
        records = _yaml_records(text, file)
    else:
        records = _table_records(table_of_text(text, ROSTER, file=file))
    return _validated(records, file, known_user_ids)


def parse_roster_bytes(
    data: bytes, *, file: str, known_user_ids: frozenset[str] = frozenset()
) -> list[RosterRow]:
    """Validate a roster file's bytes: CSV or YAML in UTF-8 (BOM or not) or GB18030/GBK, or
    an .xlsx workbook; headers in English or Chinese (``input_columns.ROSTER``)."""
    if file.lower().endswith(".xlsx"):
        return _validated(_table_records(table_of_bytes(data, ROSTER, file=file)), file,
                          known_user_ids)
    return parse_roster(decode_text(data, file=file), file=file, known_user_ids=known_user_ids)


def _validated(records: list[tuple[int, dict[str, str]]], file: str,
               known_user_ids: frozenset[str]) -> list[RosterRow]:
    rows = [_validate_record(number, record, file) for number, record in records]
    _check_references(rows, file, known_user_ids)
    return rows


def _table_records(table: Table) -> list[tuple[int, dict[str, str]]]:
    """Each row as ``{column: cell}`` ('' for an optional column the file leaves out)."""
    return [(number, {name: table.cell(values, name) for name in ROSTER_COLUMNS})
            for number, values in table.rows]


def _yaml_records(text: str, file: str) -> list[tuple[int, dict[str, str]]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"not valid YAML: {exc}", file=file) from None
    if isinstance(data, dict):
        data = data.get("users")
    if not isinstance(data, list):
        raise BadInput("expected a list of users (or a mapping with key 'users')", file=file)
    records = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise BadInput("each user must be a mapping", file=file, row=index)
        unknown = sorted(set(item) - set(ROSTER_COLUMNS))
        if unknown:
            raise BadInput(f"unexpected key {unknown[0]}", file=file, row=index, column=unknown[0])
        record = {}
        for key in ROSTER_COLUMNS:
            value = item.get(key)
            if isinstance(value, list):
                value = ";".join(str(v) for v in value)
            record[key] = "" if value is None else str(value)
        records.append((index, record))
    return records


def _validate_record(row: int, record: dict[str, str], file: str) -> RosterRow:
    def bad(column: str, problem: str) -> BadInput:
        return BadInput(problem, file=file, row=row, column=column)

    user_id = record["user_id"].strip()
    if not USER_ID_PATTERN.match(user_id):
        raise bad("user_id", f"user_id {user_id!r} must be 1-64 letters, digits, '_', '.', '-'")
    name = record["name"].strip()
    if not name:
        raise bad("name", "name is empty")
    branch = record["branch"].strip()
    if not BRANCH_PATTERN.match(branch):
        raise bad("branch", f"branch code {branch!r} must be 2-8 upper-case letters/digits")
    written = [r.strip() for r in ROLE_SEPARATORS.split(record["roles"]) if r.strip()]
    if not written:
        raise bad("roles", "at least one role is required")
    unknown = [r for r in written if r not in KNOWN_ROLES and r not in ROLE_BY_WORD]
    if unknown:
        known = ", ".join(sorted(KNOWN_ROLES))
        raise bad("roles", f"unknown role {unknown[0]!r}; known roles: {known} (or their "
                  "Chinese names, e.g. 营业部经理; separated by ';' or '、')")
    roles = frozenset(ROLE_BY_WORD.get(r, r) for r in written)
    if branch == HEAD_OFFICE and roles & (TEAM_ROLES | BRANCH_ROLES):
        role = sorted(roles & (TEAM_ROLES | BRANCH_ROLES))[0]
        raise bad("roles", f"role {role!r} belongs to a branch, not to head office {HEAD_OFFICE}")
    if branch != HEAD_OFFICE and roles & HEAD_OFFICE_ROLES:
        role = sorted(roles & HEAD_OFFICE_ROLES)[0]
        raise bad("roles", f"role {role!r} is a head-office role; its branch must be {HEAD_OFFICE}")
    supervisor = record["supervisor_id"].strip() or None
    if supervisor == user_id:
        raise bad("supervisor_id", "a user cannot supervise themselves")
    secret = record["secret"]
    return RosterRow(
        row=row, user_id=user_id, name=name, roles=roles, branch=branch,
        team=record["team"].strip(), supervisor_id=supervisor, secret=secret or None,
    )


def _check_references(rows: list[RosterRow], file: str, known: frozenset[str]) -> None:
    seen: dict[str, int] = {}
    for r in rows:
        if r.user_id in seen:
            raise BadInput(
                f"user_id {r.user_id!r} already appears on row {seen[r.user_id]}",
                file=file, row=r.row, column="user_id",
            )
        seen[r.user_id] = r.row
    ids = set(seen) | set(known)
    supervisors = {r.user_id: r.supervisor_id for r in rows}
    for r in rows:
        if r.supervisor_id and r.supervisor_id not in ids:
            raise BadInput(
                f"supervisor_id {r.supervisor_id!r} is not on the roster",
                file=file, row=r.row, column="supervisor_id",
            )
        if r.secret is None and r.user_id not in known:
            raise BadInput("a new user needs a secret", file=file, row=r.row, column="secret")
        # reporting lines must not loop
        walk, current = {r.user_id}, r.supervisor_id
        while current and current in supervisors:
            if current in walk:
                raise BadInput(
                    f"reporting line of {r.user_id!r} loops back through {current!r}",
                    file=file, row=r.row, column="supervisor_id",
                )
            walk.add(current)
            current = supervisors[current]
