"""Who may see a request (a filing, a client attribution), and who may hand one whose run died
to a new run.  Pure rules; the caller logs a refusal.  Documents have their own rules in
``brokerflow.archive.access``."""

from __future__ import annotations

from brokerflow.kernel.identity import (
    ADMIN_ROLE,
    BRANCH_MANAGEMENT_ROLES,
    TEAM_LEADER_ROLES,
    UserView,
)

#: Besides branch management, the staff who handle attributions at the counter.
ATTRIBUTION_DESK_ROLES = frozenset({"backoffice", "counter_clerk"})


def filing_readable(user: UserView, *, branch: str) -> str | None:
    """None when ``user`` may see the filings of ``branch``; else why not."""
    if user.is_head_office or user.branch == branch:
        return None
    return "not of the filing's branch"


def attribution_readable(user: UserView, *, branch: str, team: str, cm_id: str) -> bool:
    """Head office; the branch's management and desk; the team's leaders; the CM themself."""
    if user.is_head_office:
        return True
    if user.branch != branch:
        return False
    if user.has_any(BRANCH_MANAGEMENT_ROLES | ATTRIBUTION_DESK_ROLES):
        return True
    if user.has_any(TEAM_LEADER_ROLES) and team == user.team:
        return True
    return cm_id == user.user_id


#: Who may hand a request whose run died to a new run (SPEC §2.1 least privilege).
REBIND_ROLES = {"filing": frozenset({"brokerage_office"}),
                "attribution": frozenset({"trading_manager"}),
                "level change": frozenset({"branch_manager"}),
                "opening import": frozenset({"trading_manager"})}


def rebind_refusal(user: UserView, *, kind: str, branch: str) -> str | None:
    """None when ``user`` may rebind a ``kind`` request of ``branch`` to a new run: an admin,
    the brokerage business office for filings, the branch's trading dept manager for
    attributions and opening imports, its branch manager for level changes; else why not."""
    if ADMIN_ROLE in user.roles:
        return None
    roles = REBIND_ROLES.get(kind, frozenset())
    if user.has_any(roles) and (user.is_head_office or user.branch == branch):
        return None
    if not roles:
        return f"rebinding a {kind} needs role admin"
    return (f"rebinding a {kind} needs role admin or {' / '.join(sorted(roles))}"
            + ("" if user.is_head_office else f" in branch {branch}"))
