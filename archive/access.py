"""Who may read which archived document (档案的查阅原则, seed 002 第二十五条), and who may
archive an outside one (SPEC §5).  Pure rules.

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

from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, TEAM_LEADER_ROLES, UserView


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


@dataclass(frozen=True)
class ReadableScope:
    """A superset of what a user may read, for narrowing an index query before ``decide_read``.

    ``None`` in a field means no restriction by it; ``cm_ids`` and ``team`` are alternatives
    (a row passes when either matches).  Never narrower than ``decide_read`` allows.
    """

    branch: str | None = None
    cm_ids: frozenset[str] | None = None
    team: str | None = None


def readable_scope(user: UserView, *, subordinates: frozenset[str] = frozenset()
                   ) -> ReadableScope:
    """The query-side counterpart of ``decide_read`` for ``user`` (see ``ReadableScope``)."""
    if user.is_head_office:
        return ReadableScope()
    if user.has_any(BRANCH_MANAGEMENT_ROLES):
        return ReadableScope(branch=user.branch)
    if user.has_any(TEAM_LEADER_ROLES):
        return ReadableScope(branch=user.branch, cm_ids=subordinates | {user.user_id},
                             team=user.team or None)
    return ReadableScope(branch=user.branch, cm_ids=frozenset({user.user_id}))


#: Only outside documents are archived by hand; every other type only by its flow (SPEC §5).
OUTSIDE_DOCUMENT_TYPE = "EXT"


def decide_put(user: UserView, *, branch: str, doc_type: str) -> AccessDecision:
    """May ``user`` archive an outside document of ``doc_type`` for ``branch`` by hand?"""
    if doc_type != OUTSIDE_DOCUMENT_TYPE:
        return AccessDecision(False, f"{doc_type} documents are archived only by their flow; "
                                     f"by hand only {OUTSIDE_DOCUMENT_TYPE}")
    if user.is_head_office or user.branch == branch:
        return AccessDecision(True, "a role in that branch (or head office)")
    return AccessDecision(False, f"no role in branch {branch}")
