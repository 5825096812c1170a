"""Who may read which archived document (档案的查阅原则, seed 002 第二十五条).  Pure rules.

- head-office staff (branch ``HQ``) see everything;
- a branch's management (branch manager, deputy, trading/finance managers, chief accountant)
  sees every document of that branch;
- team leaders (project director, regional and stationed managers) see documents of their
  team and of everyone whose reporting line reaches them;
- a customer manager sees only documents about themselves;
- everything else is denied (and the caller logs the attempt).
"""

from __future__ import annotations

from dataclasses import dataclass

from brokerflow.roster import UserView

BRANCH_MANAGEMENT_ROLES = frozenset(
    {"branch_manager", "deputy_manager", "trading_manager", "finance_manager", "chief_accountant"}
)
TEAM_LEADER_ROLES = frozenset({"project_director", "regional_manager", "stationed_manager"})


@dataclass(frozen=True)
class DocumentScope:
    """What the access rules need to know about a document."""

    branch: str
    team: str = ""
    cm_id: str | None = None


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str


def decide_read(
    user: UserView, doc: DocumentScope, *, subordinates: frozenset[str] = frozenset()
) -> AccessDecision:
    """May ``user`` read ``doc``?  ``subordinates``: user ids reporting (transitively) to them."""
    if user.is_head_office:
        return AccessDecision(True, "head office sees all documents")
    if doc.branch != user.branch:
        return AccessDecision(False, f"document belongs to branch {doc.branch}")
    if user.has_any(BRANCH_MANAGEMENT_ROLES):
        return AccessDecision(True, "branch management sees the branch's documents")
    if user.has_any(TEAM_LEADER_ROLES):
        if doc.cm_id is not None and (doc.cm_id == user.user_id or doc.cm_id in subordinates):
            return AccessDecision(True, "document is about the leader's team member")
        if user.team and doc.team == user.team:
            return AccessDecision(True, "document belongs to the leader's team")
    if doc.cm_id is not None and doc.cm_id == user.user_id:
        return AccessDecision(True, "document is about the user")
    return AccessDecision(False, "not about the user or a team the user leads")
