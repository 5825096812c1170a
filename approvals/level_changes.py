"""Level changes (职级变动, seed 001 第十七–十八条; SPEC §8.3): which kind an application is,
which chain signs it, when it takes effect, who may apply.  Pure rules, no I/O.

Levels: trainee < assistant < manager < senior < chief (见习/助理/经理/高级/首席).  An
application rests on the flags of the CM's latest closing line: one level up with
``promotion_eligible`` is a promotion; trainee → assistant with ``trainee_conversion_due`` is a
conversion; anything else upwards (more than one level, no eligibility, an early conversion) is
a 破格 (exceptional) promotion that the branch general manager approves.  Demotions are
proposed by the closing (``demotion_due``, ``score_demotion_due``) and the quarterly
evaluation (``convert_to_cm``), and confirmed by the branch manager.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from brokerflow.approvals.chain import (
    DEMOTION_CHAIN,
    EXCEPTIONAL_PROMOTION_CHAIN,
    PROMOTION_CHAIN,
    Chain,
)
from brokerflow.kernel.calendar import Month
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, TEAM_LEADER_ROLES, UserView
from brokerflow.kernel.vocabulary import LEVEL_LABELS, Level, LevelChangeStatus, level_rank

LEVELS: tuple[str, ...] = tuple(Level)
TRAINEE, ASSISTANT, CHIEF = Level.TRAINEE.value, Level.ASSISTANT.value, Level.CHIEF.value

PROMOTION = "promotion"
EXCEPTIONAL_PROMOTION = "exceptional_promotion"
CONVERSION = "conversion"
DEMOTION = "demotion"
CHAINS: dict[str, Chain] = {
    PROMOTION: PROMOTION_CHAIN, CONVERSION: PROMOTION_CHAIN,
    EXCEPTIONAL_PROMOTION: EXCEPTIONAL_PROMOTION_CHAIN, DEMOTION: DEMOTION_CHAIN,
}

#: Why a demotion is proposed: the flag that proposes it, and the rule it rests on.
DEMOTION_REASONS: dict[str, str] = {
    "demotion_due": "连续两个月资产级别低于聘任职级（第十八条1）",
    "score_demotion_due": "连续两个月月度绩效考核得分低于60分（第十八条2）",
    "convert_to_cm": "季度考评得分低于60分，区域经理转为营销经理（季度考评办法）",
}
#: The closing's flags that propose a demotion (``convert_to_cm`` comes from the evaluation).
CLOSING_DEMOTION_FLAGS = ("demotion_due", "score_demotion_due")

rank = level_rank  # trainee < assistant < manager < senior < chief


def check_level(level: str, *, column: str = "--to") -> str:
    """``level`` when it is a level name; BadInput naming ``column`` else."""
    if level not in LEVELS:
        raise BadInput(f"unknown level {level!r}; levels are {', '.join(LEVELS)}",
                       column=column)
    return level


def level_label(level: str | None) -> str:
    """The Chinese name of a level (见习/助理/经理/高级/首席); ``（无）`` for none."""
    if not level:
        return "（无）"
    return LEVEL_LABELS.get(level, level)


def classify_application(*, title: str | None, asset_level: str, flags: set[str],
                         to_title: str) -> str:
    """The kind of an application for ``to_title`` by a CM with ``title`` (None: no title yet,
    the asset level counts) and the flags of their latest closing line: ``conversion``,
    ``promotion`` or ``exceptional_promotion``.  BadInput for an unknown level, a target not
    above the current level, or a CM at chief already."""
    check_level(to_title)
    current = check_level(title if title is not None else asset_level, column="title")
    if current == CHIEF:
        raise BadInput(f"the CM is {level_label(CHIEF)} ({CHIEF}) already: there is no level "
                       "above it", column="--to")
    if rank(to_title) <= rank(current):
        raise BadInput(f"{to_title} is not above the CM's current level {current} "
                       f"({level_label(current)}); a demotion is proposed by the closing",
                       column="--to")
    if current == TRAINEE:
        if to_title == ASSISTANT and "trainee_conversion_due" in flags and title == TRAINEE:
            return CONVERSION
        return EXCEPTIONAL_PROMOTION  # an early conversion (month 3), or more than one level
    if rank(to_title) == rank(current) + 1 and "promotion_eligible" in flags:
        return PROMOTION
    return EXCEPTIONAL_PROMOTION


def chain_for(kind: str) -> Chain:
    """The chain that signs a level change of ``kind``."""
    try:
        return CHAINS[kind]
    except KeyError:
        raise BadInput(f"unknown level-change kind {kind!r}; one of {', '.join(CHAINS)}",
                       column="kind") from None


def effective_month(approved_month: str) -> str:
    """The month a change approved in ``approved_month`` takes effect: the next one (an LVL
    approved in M changes the title used by M+1's closing)."""
    try:
        return str(Month.parse(approved_month).minus(-1))
    except ValueError:
        raise BadInput(f"month {approved_month!r} must be YYYY-MM", column="month") from None


def demotion_reason(flags: Iterable[str]) -> str:
    """The reason text of a proposed demotion: each proposing flag with its rule."""
    return "；".join(f"{flag}: {DEMOTION_REASONS[flag]}"
                     for flag in sorted(set(flags) & set(DEMOTION_REASONS)))


def demotion_target(*, from_title: str | None, to_title: str | None) -> str | None:
    """``to_title`` when it is a level below ``from_title``; else None (nothing to propose)."""
    if not from_title or not to_title or from_title not in LEVELS or to_title not in LEVELS:
        return None
    return to_title if rank(to_title) < rank(from_title) else None


def application_refusal(actor: UserView, *, cm: UserView) -> str | None:
    """None when ``actor`` may apply for ``cm``'s level change: the CM themself, or their
    supervisor, in the CM's branch; else why not."""
    if actor.branch != cm.branch:
        return f"{actor.user_id} is not staff of branch {cm.branch}"
    if actor.user_id == cm.user_id or actor.user_id == cm.supervisor_id:
        return None
    return (f"only {cm.user_id} or their supervisor ({cm.supervisor_id or 'none on the roster'})"
            f" may apply for {cm.user_id}'s level change")


def start_refusal(actor: UserView, *, branch: str, status: str,
                  proposed_by: str) -> str | None:
    """None when ``actor`` may start a level change of ``branch``: a proposed demotion its
    branch manager; an application recorded without a run its applicant or the branch
    manager; else why not."""
    if actor.branch != branch:
        return f"not staff of branch {branch}"
    if "branch_manager" in actor.roles:
        return None
    if status == LevelChangeStatus.WAITING and actor.user_id == proposed_by:
        return None
    return f"only the branch manager of {branch} (or the applicant) starts a level change"


def list_refusal(actor: UserView, *, branch: str) -> str | None:
    """None when ``actor`` may list ``branch``'s level changes (head office, or staff of the
    branch: ``change_visible`` then narrows what they see); else why not."""
    if actor.is_head_office or actor.branch == branch:
        return None
    return f"not staff of branch {branch}"


def change_visible(actor: UserView, *, branch: str, cm_id: str,
                   subordinates: frozenset[str] = frozenset()) -> bool:
    """Whether ``actor`` may see a level change of ``cm_id`` in ``branch``: head office and
    the branch's management all; team leaders their reporting line's; a CM their own."""
    if actor.is_head_office:
        return True
    if actor.branch != branch:
        return False
    if actor.has_any(BRANCH_MANAGEMENT_ROLES):
        return True
    return cm_id == actor.user_id or (actor.has_any(TEAM_LEADER_ROLES) and cm_id in subordinates)


def signer_refusal(signer_id: str, *, step: str, cm_id: str,
                   reporting_line: Sequence[str]) -> str | None:
    """Why a signer may not sign ``step`` of ``cm_id``'s change (None: they may): the CM never
    signs their own change, and the supervisor step is signed by a manager in the CM's
    reporting line (the stationed or regional manager above them)."""
    if signer_id == cm_id:
        return f"{signer_id} may not sign their own level change"
    if step == "supervisor" and signer_id not in reporting_line:
        return (f"{signer_id} is not in {cm_id}'s reporting line "
                f"({' → '.join(reporting_line) or 'none on the roster'})")
    return None
