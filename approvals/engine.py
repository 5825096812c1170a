"""The approval engine's I/O: decisions in SQL, human steps as Prefect pauses/suspensions.

Every flow that needs a signature calls ``take_signature``, which waits for a form
(``approvals.waiting.awaited_form``) under a key derived from state in the database (revision
and number of forms processed), so a flow that is re-executed after a suspension or a restart
asks for the same form again and Prefect hands back the same answer.  The form is counted (or
its refusal logged) in one transaction with the audit row, and only then is the stored answer
deleted from Prefect: a run that dies in between reads it again and counts it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from brokerflow.approvals.audit import append_audit
from brokerflow.approvals.chain import Chain, Decision, Form, FormCheck, Waiting, check_form
from brokerflow.approvals.forms import NamingForm, SignForm, describe_waiting
from brokerflow.approvals.waiting import WaitMode, awaited_form
from brokerflow.kernel.errors import AccessDenied, NotFound
from brokerflow.kernel.models import ApprovalDecision, Reminder, User, WaitingStep, utcnow
from brokerflow.kernel.roster import UserView, get_user_view, verify_secret


def load_decisions(session: Session, *, request_key: str, revision: int) -> list[Decision]:
    rows = session.exec(
        select(ApprovalDecision)
        .where(ApprovalDecision.request_key == request_key,
               ApprovalDecision.revision == revision)
        .order_by(col(ApprovalDecision.id))
    )
    return [
        Decision(step=r.step, signer_id=r.signer_id, role=r.role, decision=r.decision,
                 opinion=r.opinion, at=_local(r.decided_at), department=r.department,
                 departments=tuple(d for d in r.departments.split(";") if d),
                 details=tuple(sorted(json.loads(r.details or "{}").items())))
        for r in rows
    ]


def _local(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(_zone()).strftime("%Y-%m-%d %H:%M")


def _zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def record_decision(
    session: Session, *, request_key: str, revision: int, step: str, signer_id: str,
    check: FormCheck, decision: str, opinion: str, details: dict[str, str] | None = None,
    form_key: str = "",
) -> ApprovalDecision:
    """Count a checked form and audit it (caller commits).

    ``form_key`` (the Prefect pause key the form answered) lets whoever sent the form find
    out what became of it.
    """
    row = ApprovalDecision(
        request_key=request_key, revision=revision, step=step, signer_id=signer_id,
        role=check.role, decision=decision, opinion=opinion.strip(),
        department=check.department, departments=";".join(check.departments),
        details=json.dumps(details or {}, ensure_ascii=False, sort_keys=True),
    )
    session.add(row)
    session.flush()
    append_audit(session, actor_id=signer_id, action="decision", request_key=request_key,
                 at=row.decided_at,
                 details={"revision": revision, "step": step, "role": check.role,
                          "decision": decision, "opinion": row.opinion,
                          "department": check.department, "departments": list(check.departments),
                          "details": details or {}, "decision_id": row.id,
                          "form": form_key})
    waiting = session.get(WaitingStep, request_key)
    if waiting is not None:
        session.delete(waiting)
    return row


def record_refusal(
    session: Session, *, request_key: str, revision: int, step: str, signer_id: str, reason: str,
    form_key: str = "",
) -> None:
    """Log a form that did not count (caller commits); signers see the reason next time."""
    append_audit(session, actor_id=signer_id or "(blank)", action="refused",
                 request_key=request_key,
                 details={"revision": revision, "step": step, "reason": reason,
                          "form": form_key})
    waiting = session.get(WaitingStep, request_key)
    if waiting is not None:
        waiting.last_refusal = reason
        session.add(waiting)


def mark_waiting(
    session: Session, *, request_key: str, revision: int, step: str, flow_run_id: str
) -> WaitingStep:
    """Record that the request waits on ``step`` (keeps the original ``since``)."""
    row = session.get(WaitingStep, request_key)
    if row is None or row.revision != revision or row.step != step:
        if row is not None:
            session.delete(row)
            session.flush()
        row = WaitingStep(request_key=request_key, revision=revision, step=step,
                          flow_run_id=flow_run_id)
        session.add(row)
    return row


def clear_waiting(session: Session, *, request_key: str) -> None:
    row = session.get(WaitingStep, request_key)
    if row is not None:
        session.delete(row)


# --------------------------------------------------------------------------- reminders (催办)


@dataclass(frozen=True)
class Overdue:
    request_key: str
    revision: int
    step: str
    since: datetime
    waited: timedelta


def overdue_steps(
    waiting: Sequence[WaitingStep], reminders: Sequence[Reminder], *, now: datetime,
    limit: timedelta,
) -> list[Overdue]:
    """Steps waiting longer than ``limit`` with no reminder in the last ``limit`` (pure)."""
    last_reminded: dict[tuple[str, int, str], datetime] = {}
    for r in reminders:
        key = (r.request_key, r.revision, r.step)
        at = _aware(r.reminded_at)
        last_reminded[key] = max(at, last_reminded.get(key, at))
    found = []
    for w in waiting:
        since = _aware(w.since)
        if now - since < limit:
            continue
        previous = last_reminded.get((w.request_key, w.revision, w.step))
        if previous is not None and now - previous < limit:
            continue
        found.append(Overdue(w.request_key, w.revision, w.step, since, now - since))
    return found


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def record_reminders(session: Session, *, now: datetime, limit: timedelta) -> list[Reminder]:
    """Create a reminder row for every overdue step (caller commits)."""
    waiting = list(session.exec(select(WaitingStep)))
    reminders = list(session.exec(select(Reminder)))
    created = []
    for o in overdue_steps(waiting, reminders, now=now, limit=limit):
        days = o.waited.total_seconds() / 86400
        message = (f"催办: {o.request_key} revision {o.revision} has waited {days:.1f} days "
                   f"on step {o.step} (since {o.since.isoformat(timespec='minutes')})")
        row = Reminder(request_key=o.request_key, revision=o.revision, step=o.step,
                       waiting_since=o.since, reminded_at=now, message=message)
        session.add(row)
        append_audit(session, actor_id="system", action="reminder", request_key=o.request_key,
                     at=now, details={"revision": o.revision, "step": o.step,
                                      "waiting_since": o.since.isoformat()})
        created.append(row)
    return created


# --------------------------------------------------------------------------- one signature


BASE_FORM_FIELDS = frozenset({"signer", "secret", "decision", "opinion",
                              "countersign_departments"})


def form_details(answer: Any) -> dict[str, str]:
    """The step-specific fields of a form answer, as text (the secret never among them)."""
    return {k: str(v) for k, v in answer.model_dump().items() if k not in BASE_FORM_FIELDS}


def bind_flow_run(engine: Engine, model: Any, key: Any, run_id: str) -> None:
    """Record which flow run handles a request; refuse a second run for the same request."""
    with Session(engine) as session:
        row = session.get(model, key)
        if row is None:
            raise NotFound(f"no {model.__name__} {key}")
        if row.flow_run_id is None:
            row.flow_run_id = run_id
            session.add(row)
            session.commit()
        elif row.flow_run_id != run_id:
            raise AccessDenied(f"{model.__name__} {key} is handled by flow run {row.flow_run_id}")


def update_row(engine: Engine, model: Any, key: Any, **values: Any) -> None:
    """Set ``values`` on one row in a transaction of its own."""
    with Session(engine) as session:
        row = session.get(model, key)
        if row is None:
            raise NotFound(f"no {model.__name__} {key}")
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()


def claim_on(model: Any, key: Any) -> Callable[[Session, int], bool]:
    """A ``claim_attempt`` for a row with a ``form_attempts`` counter (and ``updated_at``)."""

    def claim(session: Session, attempt: int) -> bool:
        row = session.get(model, key)
        if row is None or row.form_attempts != attempt:  # counted before a restart
            return False
        row.form_attempts += 1
        if hasattr(row, "updated_at"):
            row.updated_at = utcnow()
        session.add(row)
        return True

    return claim


def identify(engine: Engine, signer_id: str, secret: str) -> UserView | None:
    """The roster user when ``secret`` verifies, else None (never raises, never logs it)."""
    with Session(engine) as session:
        user = session.get(User, signer_id) if signer_id else None
        stored = user.secret_hash if user else ""
        view = get_user_view(session, signer_id) if user else None
    if view is None or not verify_secret(secret, stored):
        return None
    return view


def user_names(engine: Engine, ids: Sequence[str]) -> dict[str, str]:
    with Session(engine) as session:
        users = {u: session.get(User, u) for u in set(ids)}
    return {u: (user.name if user else u) for u, user in users.items()}


@dataclass(frozen=True)
class SigningRequest:
    """What one waiting step of one request needs from its flow."""

    chain: Chain
    request_key: str
    revision: int
    attempt: int  # forms processed so far; keys the pause so a re-run asks for the same one
    title: str
    subject: str
    serial: str
    pdf_url: str
    submitter_id: str
    branch: str | None = None  # signers must be staff of this branch (branch-signed chains)
    form_type: type[SignForm] | None = None  # a step-specific form with more fields
    extra_check: Callable[[Any], str | None] | None = None  # refusal reason for those fields


def take_signature(
    engine: Engine,
    request: SigningRequest,
    waiting: Waiting,
    decisions: list[Decision],
    *,
    claim_attempt: Callable[[Session, int], bool],
    run_id: str,
    mode: WaitMode,
    poll_interval: float,
) -> SignForm | None:
    """Wait for one form on ``waiting``; count it or record why not.  The form when counted.

    ``claim_attempt(session, attempt)`` advances the owner's form counter inside the
    recording transaction and returns False when that form was already processed (a re-run
    after a restart), in which case nothing is recorded twice.
    """
    with Session(engine) as session:
        row = mark_waiting(session, request_key=request.request_key, revision=request.revision,
                           step=waiting.step.name, flow_run_id=run_id)
        last_refusal = row.last_refusal
        session.commit()
    description = describe_waiting(
        title=request.title, subject=request.subject, serial=request.serial,
        pdf_url=request.pdf_url, waiting=waiting, decisions=decisions,
        names=user_names(engine, [d.signer_id for d in decisions]), last_refusal=last_refusal,
    )
    form_type: type[SignForm] = request.form_type or (
        NamingForm if waiting.step.names_countersigners else SignForm)
    key = form_key(request.request_key, request.revision, request.attempt)
    with awaited_form(form_type, description=description, key=key, mode=mode,
                      poll_interval=poll_interval) as answer:
        signer = identify(engine, answer.signer.strip(), answer.secret.get_secret_value())
        form = Form(signer_id=answer.signer.strip(), decision=answer.decision,
                    opinion=answer.opinion,
                    departments=tuple(getattr(answer, "countersign_departments", []) or ()))
        check = check_form(request.chain, waiting, form, signer=signer,
                           secret_ok=signer is not None, submitter_id=request.submitter_id,
                           decisions=decisions, branch=request.branch)
        if check.ok and request.extra_check is not None:
            problem = request.extra_check(answer)
            if problem:
                check = FormCheck(False, problem)
        with Session(engine) as session:
            if not claim_attempt(session, request.attempt):
                return None  # counted before a restart; the stored answer is deleted now
            if check.ok:
                record_decision(session, request_key=request.request_key,
                                revision=request.revision, step=waiting.step.name,
                                signer_id=form.signer_id, check=check, decision=form.decision,
                                opinion=form.opinion, details=form_details(answer),
                                form_key=key)
            else:
                record_refusal(session, request_key=request.request_key,
                               revision=request.revision, step=waiting.step.name,
                               signer_id=form.signer_id, reason=check.reason, form_key=key)
            session.commit()
    return answer if check.ok else None


def form_key(request_key: str, revision: int, attempt: int) -> str:
    """The Prefect pause key of a request's ``attempt``-th form (Prefect keys: [a-z0-9-])."""
    return f"{request_key.replace(':', '-').lower()}-r{revision}-f{attempt}"
