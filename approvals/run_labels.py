"""What a chain's flow run is called and tagged in the Prefect UI (SPEC §9).  No I/O here.

A run is named for what it is (``报批 SZ01-FIL-2026-000001 2027年度营销方案``,
``薪酬 SZ01 2026-10``) and tagged ``branch:<code>`` and ``await:<role>`` for every role that
may sign now, so that the runs list filtered by ``await:branch_manager`` and state Suspended is
a branch manager's to-do list.  The await tags move with the chain and are gone at its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

AWAIT_PREFIX = "await:"
BRANCH_PREFIX = "branch:"
#: Prefect keeps run names short in its lists; longer subjects are cut.
MAX_NAME_CHARS = 120
#: A quarterly evaluation's evaluator group → the roster role that fills its forms (SPEC §8.2):
#: the run waits for these roles while forms of the group are out.
EVALUATOR_ROLES = {"peer": "cm", "sales": "cm", "regional": "regional_manager",
                   "marketing": "marketing", "gm": "branch_manager"}


def await_tag(role: str) -> str:
    return f"{AWAIT_PREFIX}{role}"


def branch_tag(branch: str) -> str:
    return f"{BRANCH_PREFIX}{branch}"


def waiting_tags(*, branch: str | None, roles: Iterable[str]) -> list[str]:
    """The tags of a run waiting for one of ``roles`` to sign (sorted, no duplicates)."""
    tags = {await_tag(r) for r in roles if r}
    if branch:
        tags.add(branch_tag(branch))
    return sorted(tags)


def moved_tags(current: Sequence[str], *, add: Iterable[str] = (),
               drop_prefixes: Sequence[str] = (AWAIT_PREFIX,)) -> list[str]:
    """``current`` without the tags starting with ``drop_prefixes``, plus ``add``; other tags
    (the deployment's, ``company-closing`` ...) stay in their order."""
    kept = [t for t in current if not t.startswith(tuple(drop_prefixes))]
    return kept + [t for t in dict.fromkeys(add) if t not in kept]


def run_name(kind: str, *parts: str) -> str:
    """``kind`` and the non-empty ``parts``, space separated, cut to ``MAX_NAME_CHARS``."""
    words = " ".join(p.strip() for p in (kind, *parts) if p and p.strip())
    return words if len(words) <= MAX_NAME_CHARS else words[:MAX_NAME_CHARS - 1] + "…"


def filing_run_name(serial: str, subject: str) -> str:
    return run_name("报批", serial, subject)


def payroll_run_name(branch: str, month: str) -> str:
    return run_name("薪酬", branch, month)


def attribution_run_name(client: str, cm_id: str) -> str:
    return run_name("客户归属", client, cm_id)


def level_change_run_name(branch: str, cm_id: str, headline: str) -> str:
    return run_name("职级变动", branch, cm_id, headline)


def risk_fund_run_name(what: str, branch: str, cm_id: str, amount: str) -> str:
    return run_name(what, branch, cm_id, f"{amount} 元")


def evaluation_run_name(branch: str, quarter: str) -> str:
    return run_name("季度考评", branch, quarter)


def evaluator_roles(groups: Iterable[str]) -> list[str]:
    """The roster roles that fill forms of evaluator ``groups`` (sorted, no duplicates)."""
    return sorted({EVALUATOR_ROLES[g] for g in groups if g in EVALUATOR_ROLES})


def flow_run_url(prefect_ui: str, flow_run_id: str) -> str:
    """The Prefect UI's page of a run ('' without a UI address or a run)."""
    if not prefect_ui or not flow_run_id:
        return ""
    return f"{prefect_ui.rstrip('/')}/runs/flow-run/{flow_run_id}"
