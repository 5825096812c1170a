"""The branch registry (SPEC §10): each branch code's full name, and the address and phone
document headers print.

``parse_branches`` reads a CSV or XLSX file (English or Chinese headers, ``input_columns.
BRANCHES``) and reports every bad row at once; ``load_branches`` upserts the rows in the
caller's session (audited; only an admin loads).  ``branch_header`` is what a document's
header shows for a code: nothing for a branch the registry does not know.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.branch_models import Branch
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import read_session
from brokerflow.kernel.errors import AccessDenied, BadInput
from brokerflow.kernel.identity import ADMIN_ROLE, BRANCH_PATTERN, HEAD_OFFICE, UserView
from brokerflow.kernel.input_columns import BRANCHES
from brokerflow.kernel.models import AccessLogEntry, User
from brokerflow.kernel.tables import open_table

BRANCH_AUDIT_KEY = "branches"
LIMITS = {"name": 64, "address": 200, "phone": 32}
MAX_PROBLEMS = 20  # bad rows listed in one message


@dataclass(frozen=True)
class BranchRow:
    """One validated line of a branch file."""

    row: int
    code: str
    name: str
    address: str
    phone: str


def parse_branches(path: Path, *, file: str | None = None) -> list[BranchRow]:
    """The rows of a branch file; one ``BadInput`` naming every bad row and column."""
    table = open_table(path, BRANCHES, file=file)
    rows: list[BranchRow] = []
    problems: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for number, values in table.rows:
        cells = {c.name: table.cell(values, c.name).strip() for c in BRANCHES}
        bad = _row_problems(cells)
        code = cells["code"]
        if not bad and code in seen:
            bad = [("code", f"branch code {code} already appears on row {seen[code]}")]
        problems += [(number, column, problem) for column, problem in bad]
        if not bad:
            seen[code] = number
            rows.append(BranchRow(number, code, cells["name"], cells["address"],
                                  cells["phone"]))
    if problems:
        number, column, problem = problems[0]
        more = [f"row {n}, column {c}: {p}" for n, c, p in problems[1:MAX_PROBLEMS]]
        hidden = len(problems) - MAX_PROBLEMS
        raise BadInput("; ".join([problem, *more])
                       + (f"; and {hidden} more" if hidden > 0 else ""),
                       file=table.file, row=number, column=column)
    if not rows:
        raise BadInput("no branches in the file", file=table.file, row=2)
    return rows


def _row_problems(cells: dict[str, str]) -> list[tuple[str, str]]:
    problems = []
    code = cells["code"]
    if code == HEAD_OFFICE or not BRANCH_PATTERN.match(code):
        problems.append(("code", f"branch code {code!r} must be 2-8 upper-case letters or "
                                 f"digits, e.g. SZ01 (not {HEAD_OFFICE})"))
    if not cells["name"]:
        problems.append(("name", "the branch's full name is empty"))
    for column, limit in LIMITS.items():
        text = cells[column]
        if len(text) > limit:
            problems.append((column, f"{column} is {len(text)} characters; at most {limit}"))
        elif any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
            problems.append((column, f"{column} holds a control character"))
    return problems


def load_refusal(actor: UserView) -> str | None:
    """None when ``actor`` may load the registry (role admin); else why not."""
    return None if ADMIN_ROLE in actor.roles else "loading branches needs role 'admin'"


def refuse(engine: Engine, actor: UserView, reason: str) -> AccessDenied:
    """Log ``actor``'s refused branch load in the access log; the error to raise."""
    with Session(engine) as session:
        session.add(AccessLogEntry(user_id=actor.user_id[:64], action="branch-load",
                                   target="branch registry", allowed=False, reason=reason))
        session.commit()
    return AccessDenied(f"{actor.user_id} may not load branches: {reason}")


def load_branches(session: Session, *, rows: list[BranchRow], actor: UserView,
                  file: str = "") -> tuple[list[str], list[str]]:
    """Upsert ``rows`` (admin only); the codes added and changed.  The caller commits."""
    refusal = load_refusal(actor)
    if refusal is not None:
        raise AccessDenied(f"{actor.user_id} may not load branches: {refusal}")
    added, changed = [], []
    now = utcnow()
    for r in rows:
        branch = session.get(Branch, r.code)
        if branch is None:
            branch = Branch(code=r.code, name=r.name)
            added.append(r.code)
        elif (branch.name, branch.address, branch.phone) == (r.name, r.address, r.phone):
            continue
        else:
            changed.append(r.code)
        branch.name, branch.address, branch.phone = r.name, r.address, r.phone
        branch.updated_at, branch.updated_by = now, actor.user_id
        session.add(branch)
    session.flush()
    append_audit(session, actor_id=actor.user_id, action="branches-loaded",
                 request_key=BRANCH_AUDIT_KEY,
                 details={"file": file, "branches": len(rows), "added": added,
                          "changed": changed})
    return added, changed


def list_branches(session: Session) -> list[Branch]:
    return list(session.exec(select(Branch).order_by(col(Branch.code))))


def registered_codes(session: Session) -> set[str]:
    return set(session.exec(select(Branch.code)))


def branch_name(session: Session, code: str) -> str | None:
    """The branch's full name; None when the registry does not know ``code``."""
    branch = session.get(Branch, code)
    return branch.name if branch is not None else None


def branch_header(session: Session, code: str) -> dict[str, str]:
    """What a document header prints for ``code`` (``branch_name``, ``branch_address``,
    ``branch_phone``); empty for a branch the registry does not know."""
    branch = session.get(Branch, code) if code else None
    if branch is None:
        return {}
    return {"branch_name": branch.name, "branch_address": branch.address,
            "branch_phone": branch.phone}


def roster_branches(session: Session, *, today: date | None = None) -> set[str]:
    """The branches active roster users belong to."""
    day = today or date.today()
    users = session.exec(select(User))
    return {u.branch for u in users if u.left_on is None or u.left_on > day}


def with_branch_header(engine: Engine, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``documents`` (document data) with their branch's header from the registry, one
    lookup per branch; what a document gives itself (a ``branch_name``) stays."""
    headers: dict[str, dict[str, str]] = {}
    with read_session(engine) as session:
        for code in {str(d.get("branch", "")) for d in documents}:
            headers[code] = branch_header(session, code)
    filled = []
    for document in documents:
        header = headers[str(document.get("branch", ""))]
        filled.append({**document, **{k: v for k, v in header.items() if not document.get(k)}})
    return filled
