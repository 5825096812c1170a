"""The staffing check against the database: the active roster as ``approvals.staffing`` reads
it, the gaps of every branch, and the guard a command runs before it starts a chain."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from brokerflow.approvals.staffing import CHAIN_LABELS, CHAINS, Gap, chain_gaps, staffing_gaps
from brokerflow.kernel.branches import registered_codes, roster_branches
from brokerflow.kernel.db import read_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import HEAD_OFFICE, UserView
from brokerflow.kernel.models import User, UserRole


def active_users(session: Session, *, today: date | None = None) -> list[UserView]:
    """Every roster user who has not left, with their roles (two queries)."""
    day = today or date.today()
    roles: dict[str, set[str]] = defaultdict(set)
    for user_id, role in session.exec(select(UserRole.user_id, UserRole.role)):
        roles[user_id].add(role)
    users = session.exec(select(User).order_by(col(User.user_id)))
    return [UserView(user_id=u.user_id, name=u.name, branch=u.branch, team=u.team,
                     supervisor_id=u.supervisor_id, roles=frozenset(roles[u.user_id]))
            for u in users if u.left_on is None or u.left_on > day]


def branch_gaps(session: Session) -> tuple[list[Gap], set[str]]:
    """The gaps of every branch on the roster or in the registry (and of head office), and
    the registered branch codes."""
    registered = registered_codes(session)
    users = active_users(session)
    return staffing_gaps(users, branches=registered | roster_branches(session)), registered


def require_staffed(engine: Engine, *, chain: str, branch: str,
                    submitter_id: str | None = None) -> None:
    """Refuse (``BadInput``, exit 2, nothing written) to start ``chain`` for ``branch`` when
    the roster cannot complete it, naming the step and the missing role."""
    with read_session(engine) as session:
        gaps = chain_gaps(CHAINS[chain], active_users(session), branch=branch,
                          submitter_id=submitter_id)
    if gaps:
        where = ("head office" if all(g.where == HEAD_OFFICE for g in gaps)
                 else f"branch {branch}")
        raise BadInput(
            f"the {chain} chain ({CHAIN_LABELS.get(chain, chain)}) of branch {branch} cannot be "
            f"completed: the roster of {where} lacks a signer — "
            + "; ".join(f"step {g.step} ({g.step_label}) {g.problem}" for g in gaps)
            + "; load a roster with the missing role first", column="--branch")
