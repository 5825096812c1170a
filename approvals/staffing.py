"""Whether the roster can complete each approval chain (SPEC §10).  Pure: no I/O.

A chain is completable for a branch when every step has someone to sign it and, where nobody
signs two steps of one request (``distinct_signers``), enough different people: a matching of
the chain's signatures to distinct users.  A signature is one step, or one department of a
countersign step; a countersign step whose departments are named at run time needs at least
one head-office holder of a countersign department.  Steps whose roles are head-office roles
are signed at head office (``HQ``), the others by the branch's own staff.  The submitter
signs none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from brokerflow.approvals.chain import (
    ATTRIBUTION_CHAIN,
    DEMOTION_CHAIN,
    EXCEPTIONAL_PROMOTION_CHAIN,
    FILING_CHAIN,
    PAYROLL_CHAIN,
    PROMOTION_CHAIN,
    RISK_FUND_DEDUCTION_CHAIN,
    RISK_FUND_REFUND_CHAIN,
    Chain,
    Step,
)
from brokerflow.kernel.identity import HEAD_OFFICE, HEAD_OFFICE_ROLES, UserView
from brokerflow.kernel.vocabulary import COUNTERSIGN_DEPARTMENTS, DEPARTMENT_LABELS, ROLE_LABELS

#: Every chain, by name, with what a person calls it.
CHAINS: dict[str, Chain] = {c.name: c for c in (
    FILING_CHAIN, PAYROLL_CHAIN, ATTRIBUTION_CHAIN, PROMOTION_CHAIN,
    EXCEPTIONAL_PROMOTION_CHAIN, DEMOTION_CHAIN, RISK_FUND_DEDUCTION_CHAIN,
    RISK_FUND_REFUND_CHAIN)}
CHAIN_LABELS: dict[str, str] = {
    "filing": "报批流程", "payroll": "薪酬签批", "attribution": "客户归属确认",
    "promotion": "晋升/转正", "exceptional_promotion": "破格晋升", "demotion": "降级",
    "risk_fund_deduction": "风险基金扣除", "risk_fund_refund": "风险基金退还",
}
ANY_DEPARTMENT = "any countersign department"


@dataclass(frozen=True)
class Slot:
    """One signature a request needs: a step, or one department of a countersign step."""

    step: Step
    roles: frozenset[str]
    where: str  # the branch whose staff sign it, or HQ

    @property
    def wording(self) -> str:
        if self.roles == COUNTERSIGN_DEPARTMENTS and not self.step.roles:
            return f"a holder of {ANY_DEPARTMENT} (会签部门)"
        return " or ".join(role_text(r) for r in sorted(self.roles))


@dataclass(frozen=True)
class Gap:
    """A chain a branch cannot complete: the step that lacks a signer, and why."""

    branch: str  # the branch, or HQ for a chain signed at head office only
    chain: str
    step: str
    step_label: str
    roles: tuple[str, ...]
    problem: str
    where: str = ""  # whose staff sign the step: the branch, or HQ

    def describe(self) -> str:
        label = CHAIN_LABELS.get(self.chain, self.chain)
        return (f"{self.branch}: {self.chain} chain ({label}): step {self.step} "
                f"({self.step_label}) {self.problem}")


def role_text(role: str) -> str:
    """``经纪业务综合室 brokerage_office``: a role as messages name it."""
    label = ROLE_LABELS.get(role) or DEPARTMENT_LABELS.get(role)
    return f"{label} {role}" if label else role


def signed_at_head_office(chain: Chain) -> bool:
    """Whether every step of ``chain`` is signed at head office (the same for every branch)."""
    return all(_where(step, "") == HEAD_OFFICE for step in chain.steps)


def _where(step: Step, branch: str) -> str:
    roles = step.roles or (COUNTERSIGN_DEPARTMENTS if step.kind == "countersign" else step.roles)
    return HEAD_OFFICE if roles and roles <= HEAD_OFFICE_ROLES else branch


def slots(chain: Chain, *, branch: str) -> list[Slot]:
    """The signatures a request of ``chain`` from ``branch`` needs, in chain order."""
    out = []
    for step in chain.steps:
        where = _where(step, branch)
        if step.kind == "countersign" and step.roles:
            out += [Slot(step, frozenset({role}), where) for role in sorted(step.roles)]
        elif step.kind == "countersign":
            out.append(Slot(step, COUNTERSIGN_DEPARTMENTS, where))
        else:
            out.append(Slot(step, step.roles, where))
    return out


def chain_gaps(chain: Chain, users: Iterable[UserView], *, branch: str,
               submitter_id: str | None = None) -> list[Gap]:
    """Why ``chain`` cannot be completed for ``branch`` by ``users`` (active roster users),
    one ``Gap`` per signature left without a signer; empty when it can."""
    people = [u for u in users if u.user_id != submitter_id]
    needed = slots(chain, branch=branch)
    groups: list[list[Slot]] = [needed] if chain.distinct_signers else [
        [s for s in needed if s.step.name == step.name] for step in chain.steps]
    gaps: list[Gap] = []
    for group in groups:
        candidates = [_holders(slot, people) for slot in group]
        signer_of = _match(candidates)
        for index, slot in enumerate(group):
            if index in signer_of:
                continue
            gaps.append(Gap(branch=branch, chain=chain.name, step=slot.step.name,
                            step_label=slot.step.label, roles=tuple(sorted(slot.roles)),
                            problem=_why(slot, candidates[index], group, signer_of,
                                         submitter_id, users), where=slot.where))
    return gaps


def staffing_gaps(users: Sequence[UserView], *, branches: Iterable[str],
                  chains: Iterable[Chain] = CHAINS.values()) -> list[Gap]:
    """Every chain each of ``branches`` cannot complete; a chain signed at head office only
    is checked once, under HQ."""
    gaps: list[Gap] = []
    chosen = list(chains)
    for chain in chosen:
        if signed_at_head_office(chain):
            gaps += chain_gaps(chain, users, branch=HEAD_OFFICE)
    for branch in sorted(set(branches) - {HEAD_OFFICE}):
        for chain in chosen:
            if not signed_at_head_office(chain):
                gaps += chain_gaps(chain, users, branch=branch)
    return gaps


def _holders(slot: Slot, people: Sequence[UserView]) -> list[str]:
    return sorted(u.user_id for u in people
                  if u.branch == slot.where and not slot.roles.isdisjoint(u.roles))


def _match(candidates: list[list[str]]) -> dict[int, str]:
    """A largest assignment of slots to distinct users (augmenting paths; chains are short)."""
    owner: dict[str, int] = {}

    def place(index: int, seen: set[str]) -> bool:
        for user in candidates[index]:
            if user in seen:
                continue
            seen.add(user)
            if user not in owner or place(owner[user], seen):
                owner[user] = index
                return True
        return False

    for index in range(len(candidates)):
        place(index, set())
    return {index: user for user, index in owner.items()}


def _why(slot: Slot, holders: list[str], group: list[Slot], signer_of: dict[int, str],
         submitter_id: str | None, users: Iterable[UserView]) -> str:
    place = "head office (HQ)" if slot.where == HEAD_OFFICE else f"branch {slot.where}"
    if not holders:
        if submitter_id and any(u.user_id == submitter_id and u.branch == slot.where
                                and not slot.roles.isdisjoint(u.roles) for u in users):
            return (f"needs {slot.wording}: only the submitter {submitter_id} holds it at "
                    f"{place}, and the submitter signs none")
        return f"needs {slot.wording}: nobody at {place} holds it"
    busy = [f"{user} already signs step {group[index].step.name}"
            + (f" ({sorted(group[index].roles)[0]})" if group[index].step == slot.step else "")
            for index, user in sorted(signer_of.items()) if user in holders]
    return (f"needs a second person with {slot.wording}: " + "; ".join(busy)
            + " (nobody signs two steps of one request)")
