"""One signature on one step, as a flow takes it, and the rows a flow run drives.

``take_signature`` names and tags the flow run for the step (``approvals.run_labels``: the
roles that may sign now), shows the step's form (``approvals.waiting``), checks the answer
against the chain's rules (``approvals.chain``) and the roster, and records the decision or
the refusal (``approvals.decisions``) in the transaction that advances the request's form
counter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from brokerflow.approvals.chain import Chain, Decision, Form, FormCheck, Waiting, check_form
from brokerflow.approvals.decisions import (
    form_details,
    mark_waiting,
    record_decision,
    record_refusal,
)
from brokerflow.approvals.forms import NamingForm, SignForm, describe_waiting
from brokerflow.approvals.run_labels import waiting_tags
from brokerflow.approvals.waiting import WaitMode, awaited_form, label_current_run
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import AccessDenied, NotFound
from brokerflow.kernel.models import User
from brokerflow.kernel.roster import identify


class RunBound(Protocol):
    """A request handled by one flow run (a filing, an attribution)."""

    flow_run_id: str | None


class CountsForms(Protocol):
    """A request that counts the forms it processed; the count keys its next form."""

    form_attempts: int


def bind_flow_run(engine: Engine, model: type[RunBound], key: int, run_id: str) -> None:
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


def unbind_dead_run(session: Session, model: type[RunBound], key: int, *, request_key: str,
                    actor_id: str, reason: str) -> str | None:
    """Free a request whose run died (the caller checked) for a new run, which binds itself
    (``bind_flow_run``); audited, the caller commits.  The run it was bound to."""
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"no {model.__name__} {key}")
    old = row.flow_run_id
    row.flow_run_id = None
    session.add(row)
    append_audit(session, actor_id=actor_id, action="run-rebound", request_key=request_key,
                 details={"from": old, "reason": reason})
    return old


def update_row(engine: Engine, model: type[SQLModel], key: int, **values: Any) -> None:
    """Set ``values`` on one row in a transaction of its own."""
    with Session(engine) as session:
        row = session.get(model, key)
        if row is None:
            raise NotFound(f"no {model.__name__} {key}")
        for name, value in values.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()


def claim_on(model: type[CountsForms], key: int) -> Callable[[Session, int], bool]:
    """A ``claim_attempt`` for a request row: advances its form counter (and ``updated_at``)
    inside the recording transaction; False when that form was counted already."""

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


def user_names(engine: Engine, ids: Sequence[str]) -> dict[str, str]:
    """Roster names of ``ids`` (an id not on the roster stands for itself)."""
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
    run_name: str = ""  # what the Prefect UI calls the run (``run_labels``); '' keeps its name
    home_branch: str = ""  # the branch the request is of (its tag), when not ``branch``
    notes: tuple[str, ...] = ()  # what the signer should check first (plain text lines)


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
    label_current_run(name=request.run_name or None, add=waiting_tags(
        branch=request.home_branch or request.branch, roles=waiting.may_sign))
    description = describe_waiting(
        title=request.title, subject=request.subject, serial=request.serial,
        pdf_url=request.pdf_url, waiting=waiting, decisions=decisions,
        names=user_names(engine, [d.signer_id for d in decisions]), last_refusal=last_refusal,
        notes=request.notes,
    )
    form_type: type[SignForm] = request.form_type or (
        NamingForm if waiting.step.names_countersigners else SignForm)
    key = form_key(request.request_key, request.revision, request.attempt)
    with awaited_form(form_type, description=description, key=key, mode=mode,
                      poll_interval=poll_interval) as answer:
        signer = identify(engine, user_id=answer.signer.strip(),
                          secret=answer.secret.get_secret_value())
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
