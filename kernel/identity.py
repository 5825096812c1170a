"""Who people are, as the rules see them: roster users, their roles and where they sit.  Pure
(no I/O); the roster's storage and the secret check are in ``brokerflow.kernel.roster``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.vocabulary import COUNTERSIGN_DEPARTMENTS

HEAD_OFFICE = "HQ"
ADMIN_ROLE = "admin"
TEAM_ROLES = frozenset({"cm", "stationed_manager", "regional_manager", "regional_assistant",
                        "project_director", "backoffice"})
#: ``marketing``: the branch's marketing dept (市场营销部), who evaluates quarterly (SPEC §8.2).
BRANCH_ROLES = frozenset({"counter_clerk", "trading_manager", "finance_manager",
                          "chief_accountant", "deputy_manager", "branch_manager", "marketing"})
HEAD_OFFICE_ROLES = frozenset({"brokerage_office", "channel_dept", "vp"}) | COUNTERSIGN_DEPARTMENTS
KNOWN_ROLES = TEAM_ROLES | BRANCH_ROLES | HEAD_OFFICE_ROLES | {ADMIN_ROLE}
#: A branch's management: sees all of the branch's documents and requests.
BRANCH_MANAGEMENT_ROLES = frozenset(
    {"branch_manager", "deputy_manager", "trading_manager", "finance_manager", "chief_accountant"}
)
#: Team leaders: see their team and everyone whose reporting line reaches them.
TEAM_LEADER_ROLES = frozenset({"project_director", "regional_manager", "stationed_manager"})

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BRANCH_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,7}$")


@dataclass(frozen=True)
class UserView:
    """A roster user as the rules see it (no secret)."""

    user_id: str
    name: str
    branch: str
    team: str = ""
    supervisor_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_head_office(self) -> bool:
        return self.branch == HEAD_OFFICE

    def has_any(self, roles: Iterable[str]) -> bool:
        return not self.roles.isdisjoint(roles)


def may_audit(user: UserView) -> str | None:
    """None when ``user`` may verify and rebuild the archive and audit log; else why not."""
    if user.is_head_office or ADMIN_ROLE in user.roles:
        return None
    return "needs head office or role admin"


def check_branch(branch: str, *, column: str = "--branch") -> str:
    """``branch`` when it is a branch code like ``SZ01``; BadInput naming ``column`` else."""
    if not BRANCH_PATTERN.match(branch):
        raise BadInput(
            f"branch code {branch!r} must be 2-8 upper-case letters or digits, e.g. SZ01",
            column=column,
        )
    return branch
