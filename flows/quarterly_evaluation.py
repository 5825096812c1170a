"""The quarterly evaluation (季度考评, seed 004; SPEC §8.2) as a Prefect flow.

For each branch: open the evaluation (who evaluates whom, from the roster), then wait for the
evaluators' forms (附件一, 附件二, the team form and the general manager's comment) in the
Prefect UI -- each proven by its evaluator's one-time code (their secret in development mode),
checked against the plan and the form's item maxima, counted or refused with the reason shown
above the next form -- until every form is in or the deadline passes.  Then compute
(``payroll.evaluation``), archive 季度考评结果 (EVL) and start the consequences: a proposed
conversion to sales CM for ``convert_to_cm`` (the branch manager confirms it, ``brokerflow
level start``) and a 待岗培训 notice for ``below_60``.  Nothing is scored or approved by itself.

All state lives in the database; a run that is re-executed (after a suspension or a worker
restart) continues where the forms left off.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

from prefect import flow
from sqlmodel import Session

from brokerflow.approvals.decisions import clear_waiting, mark_waiting, record_refusal
from brokerflow.approvals.forms import EvaluationInput, describe_evaluation
from brokerflow.approvals.level_records import propose_cm_conversions
from brokerflow.approvals.run_labels import (
    AWAIT_PREFIX,
    BRANCH_PREFIX,
    evaluation_run_name,
    evaluator_roles,
    waiting_tags,
)
from brokerflow.approvals.signing import claim_on, form_key
from brokerflow.approvals.waiting import (
    ANSWER_HOOKS,
    WaitMode,
    awaited_form,
    current_flow_run_id,
    label_current_run,
    waking_when,
)
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import local_minute, previous_quarter, quarter_months, utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView, check_branch
from brokerflow.kernel.models import Evaluation
from brokerflow.kernel.roster import identify
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import EvaluationStatus
from brokerflow.payroll.evaluation import QuarterEvaluation, check_quarter, compute_evaluation
from brokerflow.payroll.evaluation_document import evl_body
from brokerflow.payroll.evaluation_output import result_json
from brokerflow.payroll.evaluation_plan import (
    FORM_LABELS,
    FORMS,
    Accepted,
    Plan,
    Submitted,
    check_submission,
    evaluation_rows,
    outstanding,
)
from brokerflow.payroll.evaluation_records import (
    close_evaluation,
    evaluation_branches,
    get_evaluation,
    open_evaluation,
    plan_of,
    record_form,
    request_key,
    submitted_forms,
)
from brokerflow.payroll.notices import raise_evaluation_notices

MAX_DEADLINE_DAYS = 28  # within a paused form's own timeout (approvals.waiting)
STEP = "forms"  # the WaitingStep the evaluation waits on while forms are outstanding
WAKE_INPUT = {"evaluator": ""}  # the blank form that wakes a run at its deadline


def _check(branch: str | None, quarter: str, deadline_days: int) -> None:
    check_quarter(quarter)
    if branch is not None:
        check_branch(branch, column="branch")
    if isinstance(deadline_days, bool) or not 1 <= deadline_days <= MAX_DEADLINE_DAYS:
        raise BadInput(f"deadline_days must be 1 to {MAX_DEADLINE_DAYS}, not {deadline_days!r}",
                       column="deadline_days")


def _run_name() -> str:
    """季度考评 <branch> <quarter>, as the Prefect UI lists the run."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    return evaluation_run_name(parameters.get("branch") or "全部营业部",
                               parameters.get("quarter") or "上季度")


@flow(name="quarterly-evaluation", flow_run_name=_run_name, persist_result=True,
      on_completion=ANSWER_HOOKS, on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def quarterly_evaluation(
    branch: str | None = None,
    quarter: str | None = None,
    deadline_days: int = 10,
    wait: WaitMode = "suspend",
    poll_interval: float = 10.0,
) -> dict[str, str]:
    """Evaluate ``branch`` (default: every branch of the roster, one after the other) for
    ``quarter`` (default: the previous one); the forms close ``deadline_days`` after they
    open.  Returns each branch's EVL serial (or why there is none)."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    quarter = quarter or previous_quarter(utcnow(), archive.zone)
    _check(branch, quarter, deadline_days)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        if branch is None:
            with new_session(archive.engine) as session:
                branches = evaluation_branches(session)
        else:
            branches = [branch]
        return {b: _evaluate(archive, branch=b, quarter=quarter, deadline_days=deadline_days,
                             run_id=run_id, mode=wait, poll_interval=poll_interval)
                for b in branches}


def _evaluate(archive: Archive, *, branch: str, quarter: str, deadline_days: int, run_id: str,
              mode: WaitMode, poll_interval: float) -> str:
    with new_session(archive.engine) as session:
        evaluation = open_evaluation(
            session, branch=branch, quarter=quarter, run_id=run_id,
            deadline=utcnow() + timedelta(days=deadline_days),
            today=utcnow().astimezone(archive.zone).date())
        if evaluation.flow_run_id is None and evaluation.status != EvaluationStatus.ARCHIVED:
            evaluation.flow_run_id = run_id or None  # opened outside a flow run
            session.add(evaluation)
        session.commit()
    assert evaluation.id is not None
    if evaluation.status == EvaluationStatus.ARCHIVED:
        return evaluation.evl_serial or "nothing to evaluate"
    if evaluation.flow_run_id != (run_id or None):
        return f"handled by flow run {evaluation.flow_run_id}"
    if evaluation.status == EvaluationStatus.COLLECTING:
        _collect(archive, evaluation.id, run_id=run_id, mode=mode, poll_interval=poll_interval)
    return _finish(archive, evaluation.id)


def _deadline_passed(archive: Archive, evaluation_id: int) -> Callable[[], bool]:
    def passed() -> bool:
        with new_session(archive.engine) as session:
            return utcnow() >= get_evaluation(session, evaluation_id=evaluation_id).deadline

    return passed


def _collect(archive: Archive, evaluation_id: int, *, run_id: str, mode: WaitMode,
             poll_interval: float) -> None:
    """Take forms until all are in or the deadline passes; then close the evaluation.  While
    forms are out the run is tagged with the branch and the roles that still owe forms."""
    passed = _deadline_passed(archive, evaluation_id)
    alarm: AbstractContextManager[None] = (
        waking_when(passed, run_input=WAKE_INPUT, poll_interval=poll_interval)
        if mode == "pause" else nullcontext())
    with alarm:
        while True:
            with new_session(archive.engine) as session:
                evaluation = get_evaluation(session, evaluation_id=evaluation_id)
                key = request_key(evaluation.branch, evaluation.quarter)
                if evaluation.status != EvaluationStatus.COLLECTING:
                    return
                plan = plan_of(evaluation)
                forms = submitted_forms(session, evaluation_id=evaluation_id)
                open_slots = outstanding(plan, _filled(forms))
                if not open_slots or utcnow() >= evaluation.deadline:
                    close_evaluation(session, evaluation=evaluation,
                                     reason="deadline" if open_slots else "all_in")
                    clear_waiting(session, request_key=key)
                    session.commit()
                    label_current_run()  # nobody owes a form of this branch any more
                    return
                waiting = mark_waiting(session, request_key=key, revision=1, step=STEP,
                                       flow_run_id=run_id)
                last_refusal = waiting.last_refusal
                session.commit()
            label_current_run(add=waiting_tags(
                branch=evaluation.branch, roles=evaluator_roles(s.group for s in open_slots)),
                drop_prefixes=(AWAIT_PREFIX, BRANCH_PREFIX))
            description = _description(archive, evaluation, plan, forms,
                                       last_refusal=last_refusal)
            _take_form(archive, evaluation, plan, description=description, mode=mode,
                       poll_interval=poll_interval)


def _filled(forms: list[Submitted]) -> set[tuple[str, str, str]]:
    return {(f.evaluatee, f.group, f.evaluator) for f in forms}


def _description(archive: Archive, evaluation: Evaluation, plan: Plan, forms: list[Submitted],
                 *, last_refusal: str) -> str:
    """The markdown above the form: deadline, forms still open, items of each form."""
    rows = [("、".join(f"{plan.names.get(e, e)}（{e}）" for e in slot.evaluators),
             slot.evaluatee + (f"（{plan.names[slot.evaluatee]}）"
                               if slot.evaluatee in plan.names else ""),
             slot.group, FORM_LABELS[slot.kind]) for slot in outstanding(plan, _filled(forms))]
    items = [(FORM_LABELS[kind], "、".join(f"{item} {most}" for item, most in form.items())
              or "总经理评语 (comment only)") for kind, form in FORMS.items()]
    return describe_evaluation(
        title=f"季度考评 {evaluation.branch} {evaluation.quarter}",
        deadline=local_minute(evaluation.deadline, archive.zone), received=len(forms),
        expected=len(plan.slots), outstanding=rows, forms=items, last_refusal=last_refusal)


def _forms_of(archive: Archive, evaluation: Evaluation) -> list[Submitted]:
    assert evaluation.id is not None
    with new_session(archive.engine) as session:
        return submitted_forms(session, evaluation_id=evaluation.id, zone=archive.zone)


def _judge(archive: Archive, evaluation: Evaluation, plan: Plan,
           answer: EvaluationInput) -> Accepted | str:
    """What a form amounts to: Accepted, a refusal, or '' (a blank form after the deadline:
    it only woke the run)."""
    evaluator = answer.evaluator.strip()
    with new_session(archive.engine) as session:
        deadline = get_evaluation(session, evaluation_id=evaluation.id or 0).deadline
    if utcnow() >= deadline:
        return "" if not evaluator else (
            f"the deadline ({local_minute(deadline, archive.zone)}) has passed: the "
            "evaluation is closed")
    if not evaluator:
        return "the form names no evaluator (工号)"
    signer = identify(archive.engine, user_id=evaluator, secret=answer.secret.get_secret_value())
    if signer is None:
        return f"unknown evaluator {evaluator!r} or wrong secret"
    if signer.branch != evaluation.branch:
        return f"{evaluator} is not staff of branch {evaluation.branch}"
    return check_submission(plan, _filled(_forms_of(archive, evaluation)), evaluator=evaluator,
                            evaluatee=answer.evaluatee.strip(), group=answer.group,
                            scores=answer.scores, comment=answer.comment)


def _take_form(archive: Archive, evaluation: Evaluation, plan: Plan, *, description: str,
               mode: WaitMode, poll_interval: float) -> None:
    """Wait for one form; count it, or record why not, in the transaction that advances the
    evaluation's form counter (a re-run never counts it twice)."""
    assert evaluation.id is not None
    key = request_key(evaluation.branch, evaluation.quarter)
    attempt = evaluation.form_attempts
    pause_key = form_key(key, 1, attempt)
    with awaited_form(EvaluationInput, description=description, key=pause_key, mode=mode,
                      poll_interval=poll_interval) as answer:
        outcome = _judge(archive, evaluation, plan, answer)
        evaluator = answer.evaluator.strip()
        with Session(archive.engine) as session:
            if not claim_on(Evaluation, evaluation.id)(session, attempt):
                return  # counted before a restart; the stored answer is deleted now
            current = get_evaluation(session, evaluation_id=evaluation.id)
            if isinstance(outcome, Accepted):
                record_form(session, evaluation=current, accepted=outcome,
                            evaluator_id=evaluator, comment=answer.comment, form_key=pause_key)
                waiting = mark_waiting(session, request_key=key, revision=1, step=STEP,
                                       flow_run_id=current.flow_run_id or "")
                waiting.last_refusal = ""
                session.add(waiting)
            elif outcome:
                record_refusal(session, request_key=key, revision=1, step=STEP,
                               signer_id=evaluator[:64], reason=outcome, form_key=pause_key)
            else:
                append_audit(session, actor_id="system", action="evaluation-woken",
                             request_key=key, details={"form": pause_key})
            session.commit()


def _finish(archive: Archive, evaluation_id: int) -> str:
    """Compute from the forms in, archive EVL, start the consequences; the EVL serial."""
    with new_session(archive.engine) as session:
        evaluation = get_evaluation(session, evaluation_id=evaluation_id)
    plan = plan_of(evaluation)
    branch, quarter = evaluation.branch, evaluation.quarter
    key = request_key(branch, quarter)
    forms = _forms_of(archive, evaluation)
    rows = evaluation_rows(plan, forms, quarter=quarter)
    result = (compute_evaluation(rows, quarter=quarter) if rows
              else QuarterEvaluation(quarter, ()))
    results = result_json(result)["results"]
    last_month = str(quarter_months(quarter)[-1])
    closed_at = evaluation.closed_at or utcnow()
    serial = ""
    if plan.slots:
        body = evl_body(plan, result, forms,
                        deadline=local_minute(evaluation.deadline, archive.zone),
                        closed=local_minute(closed_at, archive.zone),
                        closed_reason=evaluation.closed_reason)
        subject = f"{quarter} 季度考评结果（{len(results)} 人）"
        data = {"branch": branch, "subject": subject, "body": body, "signatures": []}
        spec = DocumentSpec(branch=branch, doc_type="EVL", subject=subject, subject_key=key,
                            month=last_month, source=f"quarterly evaluation {branch} {quarter}")
        actor = UserView(user_id="system", name="系统（季度考评）", branch=branch)
        serial = archive_step(archive, spec, data, actor=actor)
    with new_session(archive.engine) as session:
        current = get_evaluation(session, evaluation_id=evaluation_id)
        current.evl_serial, current.status = serial, EvaluationStatus.ARCHIVED
        current.updated_at = utcnow()
        session.add(current)
        conversions = propose_cm_conversions(session, branch=branch, month=last_month,
                                             results=results)
        notices = raise_evaluation_notices(
            session, branch=branch, quarter=quarter, results=results,
            closed_on=closed_at.astimezone(archive.zone).date(), document=serial)
        clear_waiting(session, request_key=key)
        append_audit(session, actor_id="system", action="evaluation-archived",
                     request_key=key,
                     details={"evl": serial, "results": results,
                              "forms": len(forms), "expected": len(plan.slots),
                              "conversions": [c.id for c in conversions],
                              "notices": [n.id for n in notices]})
        session.commit()
    return serial or "nothing to evaluate"
