"""The level-change flow (职级变动, seed 001 第十七–十八条; SPEC §8.3) as a Prefect flow.

A promotion or trainee conversion on application goes stationed/regional manager → project
director → branch manager; a 破格 promotion ends with the branch general manager's approval
after the project director's review; a demotion the closing (or the quarterly evaluation)
proposed is confirmed by the branch manager.  Approved: 职级变动通知 (LVL) archived and the new
title recorded, effective from the closing of the month after approval.  Rejected or
returned: the change ends so (an applicant may apply again).

All state lives in the database; a run that is re-executed (after a suspension or a worker
restart) continues where the decisions left off.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from typing import Any

from prefect import flow

from brokerflow.approvals.chain import Chain, Decision, Finished, Waiting, progress
from brokerflow.approvals.decisions import clear_waiting, load_decisions
from brokerflow.approvals.level_changes import (
    DEMOTION_REASONS,
    chain_for,
    effective_month,
    level_label,
    signer_refusal,
)
from brokerflow.approvals.level_records import (
    SYSTEM,
    closing_line,
    get_level_change,
    record_title,
    reporting_line,
    request_key,
    set_change_status,
)
from brokerflow.approvals.run_labels import level_change_run_name
from brokerflow.approvals.signing import (
    SigningRequest,
    bind_flow_run,
    claim_on,
    take_signature,
    user_names,
)
from brokerflow.approvals.waiting import ANSWER_HOOKS, WaitMode, current_flow_run_id
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import LevelChange
from brokerflow.kernel.roster import get_user_view
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import (
    FLAG_LABELS,
    LEVEL_CHANGE_KINDS,
    ROLE_LABELS,
    STATUS_LABELS,
    LevelChangeStatus,
)

FINAL = (LevelChangeStatus.APPROVED, LevelChangeStatus.REJECTED, LevelChangeStatus.RETURNED)
#: The closing line's figures the notice shows (SPEC §6.3/§8.1 keys), with their labels.
FIGURES = (("asset_level", "资产级别"), ("title", "聘任职级"), ("level", "考核职级"),
           ("avg_assets_3m", "近三个月日均资产（元）"), ("valid_accounts", "有效户数"),
           ("new_value", "新增价值（元）"), ("net_revenue", "净创收（元）"),
           ("score", "考核得分"), ("flags", "标记"))
LEVEL_FIGURES = ("asset_level", "title", "level")


def _cm_name(archive: Archive, change: LevelChange) -> str:
    with new_session(archive.engine) as session:
        view = get_user_view(session, change.cm_id)
    return view.name if view is not None else change.cm_id


def _headline(change: LevelChange) -> str:
    return (f"{LEVEL_CHANGE_KINDS.get(change.kind, change.kind)} "
            f"{level_label(change.from_title)}→{level_label(change.to_title)}")


def shown_reason(reason: str) -> str:
    """A change's reason as a person reads it: a proposing flag's code left out
    (``score_demotion_due: 连续两个月…`` reads ``连续两个月…``)."""
    parts = [part.split(": ", 1) for part in reason.split("；")]
    return "；".join(p[1] if len(p) == 2 and p[0] in DEMOTION_REASONS else ": ".join(p)
                    for p in parts)


def _proposer(change: LevelChange, names: dict[str, str]) -> str:
    if change.proposed_by == SYSTEM:
        return "系统（月度结算或季度考评提出）"
    return f"{names.get(change.proposed_by, change.proposed_by)}（{change.proposed_by}）"


def figures(line: dict[str, Any] | None) -> list[dict[str, str]]:
    """The closing line's figures as the notice prints them (none without a line)."""
    if not line:
        return []
    shown = []
    for key, label in FIGURES:
        value = line.get(key)
        if value is None or value == "" or value == []:
            continue
        if key in LEVEL_FIGURES:
            text = level_label(str(value))
        elif key == "flags":
            text = "；".join(FLAG_LABELS.get(str(flag), str(flag)) for flag in value)
        else:
            text = str(value)
        shown.append({"name": label, "value": text})
    return shown


#: Titles of the LVL that records a change the chain did not approve (every chain ends in an
#: archived document with every signature, SPEC §9).
NOT_APPROVED_TITLES = {LevelChangeStatus.REJECTED: "职级变动审批记录（未通过）",
                       LevelChangeStatus.RETURNED: "职级变动审批记录（退回）"}


def _archive_notice(archive: Archive, change: LevelChange, chain: Chain,
                    decisions: list[Decision], *, approved_month: str,
                    outcome: str = LevelChangeStatus.APPROVED) -> str:
    """The LVL: who, from → to, why, the month's figures, when effective, every signature --
    or, for a change not approved (``outcome``), the same record titled so, with no dates."""
    assert change.id is not None
    names = user_names(archive.engine, [change.proposed_by, *(d.signer_id for d in decisions)])
    with new_session(archive.engine) as session:
        cm = get_user_view(session, change.cm_id)
        line = closing_line(session, branch=change.branch, cm_id=change.cm_id,
                            month=change.month)
        archiver = get_user_view(session, decisions[-1].signer_id)
    assert archiver is not None  # a counted signer is on the roster
    cm_name = cm.name if cm is not None else str((line or {}).get("name") or change.cm_id)
    title = NOT_APPROVED_TITLES.get(LevelChangeStatus(outcome), "")
    subject = (f"{title or '职级变动通知'}：{cm_name}（{change.cm_id}）"
               f"{_headline(change)}")[:200]
    approved = not title
    data: dict[str, Any] = {
        "branch": change.branch, "subject": subject, "title": title,
        "body": {
            "cm_id": change.cm_id, "cm_name": cm_name,
            "kind": LEVEL_CHANGE_KINDS.get(change.kind, change.kind),
            "from_title": level_label(change.from_title),
            "to_title": level_label(change.to_title),
            "reason": shown_reason(change.reason), "basis_month": change.month,
            "approved_month": approved_month if approved else "",
            "effective_month": effective_month(approved_month) if approved else "",
            "outcome": "" if approved else STATUS_LABELS.get(outcome, outcome),
            "proposed_by": _proposer(change, names),
            "figures": figures(line),
        },
        "signatures": [
            {"role": f"{chain.step(d.step).label}（{ROLE_LABELS.get(d.role, d.role)}）",
             "name": names.get(d.signer_id, d.signer_id), "decision": d.decision,
             "time": d.at, "opinion": d.opinion}
            for d in decisions
        ],
    }
    on_roster = cm is not None and cm.branch == change.branch
    spec = DocumentSpec(branch=change.branch, doc_type="LVL", subject=subject,
                        subject_key=request_key(change.id), revision=change.revision,
                        cm_id=change.cm_id if on_roster else None, month=approved_month,
                        source=f"level change {change.id}")
    return archive_step(archive, spec, data, actor=archiver)


def _take_signature(archive: Archive, change: LevelChange, chain: Chain, waiting: Waiting,
                    decisions: list[Decision], *, line: list[str], run_id: str,
                    mode: WaitMode, poll_interval: float) -> None:
    assert change.id is not None
    step, cm_id = waiting.step.name, change.cm_id
    request = SigningRequest(
        chain=chain, request_key=request_key(change.id), revision=change.revision,
        attempt=change.form_attempts,
        title=f"职级变动 {cm_id} {level_label(change.from_title)}→"
              f"{level_label(change.to_title)}",
        subject=f"{_cm_name(archive, change)}（{cm_id}）{_headline(change)}；事由："
                f"{change.reason}；依据 {change.month} 结算",
        serial="（批准后归档职级变动通知 LVL）", pdf_url="", submitter_id=change.proposed_by,
        branch=change.branch, run_name=level_change_run_name(change.branch, cm_id,
                                                             _headline(change)),
        extra_check=lambda answer: signer_refusal(str(answer.signer).strip(), step=step,
                                                  cm_id=cm_id, reporting_line=line),
    )
    take_signature(archive.engine, request, waiting, decisions,
                   claim_attempt=claim_on(LevelChange, change.id), run_id=run_id, mode=mode,
                   poll_interval=poll_interval)


def _finish(archive: Archive, change: LevelChange, chain: Chain, state: Finished,
            decisions: list[Decision]) -> str:
    assert change.id is not None
    key = request_key(change.id)
    if state.outcome != "approved":
        kept = _archive_notice(archive, change, chain, decisions, outcome=state.outcome,
                               approved_month=decisions[-1].at[:7]) if decisions else ""
        with new_session(archive.engine) as session:
            current = get_level_change(session, change_id=change.id)
            set_change_status(session, change=current, status=state.outcome)
            clear_waiting(session, request_key=key)
            append_audit(session, actor_id="system", action="level-change-" + state.outcome,
                         request_key=key, details={"revision": change.revision,
                                                   "step": state.step, "record": kept})
            session.commit()
        return state.outcome
    approved_month = decisions[-1].at[:7]  # the last signature's month, as the branch reads it
    serial = _archive_notice(archive, change, chain, decisions, approved_month=approved_month)
    with new_session(archive.engine) as session:
        current = get_level_change(session, change_id=change.id)
        record = record_title(session, change=current, approved_month=approved_month,
                              approved_by=[d.signer_id for d in decisions], document=serial)
        current.lvl_serial = serial
        current.effective_month = record.effective_month
        set_change_status(session, change=current, status=LevelChangeStatus.APPROVED)
        clear_waiting(session, request_key=key)
        append_audit(session, actor_id="system", action="level-change-approved",
                     request_key=key,
                     details={"revision": change.revision, "lvl": serial, "cm": change.cm_id,
                              "title": change.to_title,
                              "effective_month": record.effective_month})
        session.commit()
    return serial


@flow(name="level-change", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def level_change(change_id: int, wait: WaitMode = "suspend", poll_interval: float = 10.0) -> str:
    """Run (or continue) a level change's chain; returns the LVL serial, or the status it
    ended with (rejected, returned)."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        bind_flow_run(archive.engine, LevelChange, change_id, run_id)
        return _run_chain(archive, change_id, run_id=run_id, mode=wait,
                          poll_interval=poll_interval)


def _run_chain(archive: Archive, change_id: int, *, run_id: str, mode: WaitMode,
               poll_interval: float) -> str:
    with new_session(archive.engine) as session:
        change = get_level_change(session, change_id=change_id)
        if change.status in (LevelChangeStatus.PROPOSED, LevelChangeStatus.WAITING):
            set_change_status(session, change=change, status=LevelChangeStatus.SIGNING)
            append_audit(session, actor_id="system", action="level-change-signing",
                         request_key=request_key(change_id),
                         details={"revision": change.revision, "kind": change.kind,
                                  "flow_run": run_id})
            session.commit()
    chain = chain_for(change.kind)
    while True:
        with new_session(archive.engine) as session:
            change = get_level_change(session, change_id=change_id)
            decisions = load_decisions(session, request_key=request_key(change_id),
                                       revision=change.revision, zone=archive.zone)
            line = reporting_line(session, user_id=change.cm_id)
        if change.status in FINAL:
            return change.lvl_serial or change.status
        state = progress(chain, decisions)
        if isinstance(state, Waiting):
            _take_signature(archive, change, chain, state, decisions, line=line, run_id=run_id,
                            mode=mode, poll_interval=poll_interval)
            continue
        return _finish(archive, change, chain, state, decisions)
