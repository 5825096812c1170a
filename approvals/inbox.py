"""待我签批 -- the steps a user may sign now (SPEC §9).  No I/O here.

A request waiting on a step (``WaitingRequest``, read by ``app.inbox``) is in a
user's inbox when the chain's own rules (``approvals.chain.check_form``) would count an
approval from them there: a role that may sign now, staff of the signing branch, not the
submitter, not a signer of an earlier step; plus the request's own refusal (the CM of a
risk-fund movement or a level change never signs it).  A returned filing waits for its
submitter only.  A quarterly evaluation collecting forms is in the inbox of every evaluator
who still owes one (``WaitingRequest.owed``), with how many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from brokerflow.approvals.chain import Chain, Decision, Form, Waiting, check_form, progress
from brokerflow.approvals.run_labels import flow_run_url
from brokerflow.kernel.calendar import local_minute
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.vocabulary import DecisionKind

#: The step a returned filing waits on: its submitter resubmits or withdraws.
RESUBMIT = "resubmit"
RESUBMIT_LABEL = "退回修改：重新提交或撤回 (resubmit or withdraw)"
#: What an evaluator owing forms of a quarterly evaluation does.
FILL_FORMS_LABEL = "填写考评表"


@dataclass(frozen=True)
class WaitingRequest:
    """One request waiting on a step, with what the inbox shows and checks of it."""

    kind: str  # 报批, 薪酬, 客户归属 ... (Chinese, as the run name starts)
    request_key: str
    revision: int
    step: str
    flow_run_id: str
    chain: Chain | None  # None: not a chain step (a returned filing waits for its submitter)
    submitter_id: str
    branch: str  # the request's branch
    signer_branch: str | None  # signers must be staff of this branch (None: any)
    serial: str  # the document under signature ('' when it is archived only at the end)
    subject: str
    run_name: str
    since: datetime
    refusal: Callable[[str], str | None] | None = None  # the request's own rule, by signer
    #: Forms owed, not a chain step: evaluator id → the role of each form they still owe.
    owed: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class InboxItem:
    """A step ``request`` waits on that the user may sign now."""

    request: WaitingRequest
    step_label: str
    roles: tuple[str, ...]  # the roles (departments) that may sign it now


def open_step(request: WaitingRequest, decisions: Sequence[Decision],
              user: UserView) -> Waiting | None:
    """The step of ``request`` that ``user`` may sign now, or None."""
    if request.chain is None:
        return None
    state = progress(request.chain, decisions)
    if not isinstance(state, Waiting) or state.step.name != request.step:
        return None  # the flow has not reached (or has left) this step yet
    if request.refusal is not None and request.refusal(user.user_id):
        return None
    check = check_form(request.chain, state,
                       Form(signer_id=user.user_id, decision=DecisionKind.APPROVE),
                       signer=user, secret_ok=True, submitter_id=request.submitter_id,
                       decisions=decisions, branch=request.signer_branch)
    return state if check.ok else None


def inbox_items(waiting: Iterable[tuple[WaitingRequest, Sequence[Decision]]],
                user: UserView) -> list[InboxItem]:
    """The items of ``user``'s inbox, oldest wait first."""
    items = []
    for request, decisions in waiting:
        if request.owed is not None:
            mine = request.owed.get(user.user_id, ())
            if mine and user.branch == request.branch:
                subject = f"{request.subject}：待填 {len(mine)} 份"
                items.append(InboxItem(replace(request, subject=subject), FILL_FORMS_LABEL,
                                       tuple(sorted({r for r in mine if r}))))
            continue
        if request.chain is None:
            if request.step == RESUBMIT and request.submitter_id == user.user_id:
                items.append(InboxItem(request, RESUBMIT_LABEL, ()))
            continue
        step = open_step(request, decisions, user)
        if step is not None:
            items.append(InboxItem(request, step.step.label, step.may_sign))
    return sorted(items, key=lambda i: (i.request.since, i.request.request_key))


def inbox_view(items: Iterable[InboxItem], *, prefect_ui: str, pdf_link: Callable[[str], str],
               zone: ZoneInfo) -> list[dict[str, str]]:
    """The inbox as the CLI and the archive page show it: one row per item, with the run's
    page in the Prefect UI and the document's on the archive page ('' when there is none)."""
    return [
        {"kind": i.request.kind, "run_name": i.request.run_name, "serial": i.request.serial,
         "subject": i.request.subject, "branch": i.request.branch, "step": i.request.step,
         "step_label": i.step_label, "roles": ", ".join(i.roles),
         "since": local_minute(i.request.since, zone), "request_key": i.request.request_key,
         "flow_run_id": i.request.flow_run_id,
         "run_url": flow_run_url(prefect_ui, i.request.flow_run_id),
         "pdf_url": pdf_link(i.request.serial) if i.request.serial else ""}
        for i in items
    ]
