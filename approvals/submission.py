"""Sending a form to a waiting flow run from outside it (the CLI, the demo): counted or refused,
never lost.

Prefect accepts one answer per waiting form.  ``send_form`` resumes the run only while it
waits, reads the resume call's result (Prefect's client does not: an ``ABORT`` -- another form
won the race -- passes silently), and when another form got there first it waits for the run
to ask again and sends once more, unless the step moved on meanwhile (then the sender is told,
exit 3).  Two countersigners of different departments signing at the same moment are thus
both counted, one after the other.  Then it waits until the flow recorded what became of the
form (the audit row names the form's key) and reports it: counted, or refused with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import Engine
from sqlmodel import col, select

from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput, BrokerflowError
from brokerflow.kernel.models import ApprovalDecision, AuditEvent, WaitingStep


class FormRefused(AccessDenied):
    """The flow refused the form, or its step was signed by someone else first (exit 3)."""


class FormNotProcessed(BrokerflowError):
    """Prefect took the form but the run has not recorded it in time (exit 1)."""


@dataclass(frozen=True)
class SentForm:
    """A form Prefect accepted: its key, and (when waited for) what the flow made of it."""

    form_key: str
    step: str
    outcome: str = ""  # decision | resubmitted | withdrawn ... ('' when not waited for)


def _waiting(engine: Engine, request_key: str) -> tuple[int, str] | None:
    with new_session(engine) as session:
        row = session.get(WaitingStep, request_key)
    return (row.revision, row.step) if row is not None else None


def _signed_by(engine: Engine, request_key: str, *, signer: str,
               meant_for: tuple[int, str]) -> str:
    """Who signed step ``meant_for`` while a form for it was on its way: the sender themself
    (a second quick signature) or someone else."""
    revision, step = meant_for
    with new_session(engine) as session:
        signers = sorted(set(session.exec(select(ApprovalDecision.signer_id).where(
            ApprovalDecision.request_key == request_key, ApprovalDecision.revision == revision,
            ApprovalDecision.step == step))))
    if signer and signer in signers:
        return "signed by you already (a form is not counted twice)"
    return "signed by someone else meanwhile" + (f" ({', '.join(signers)})" if signers else "")


def _signed_meanwhile(engine: Engine, request_key: str, *, signer: str,
                      meant_for: tuple[int, str], now: tuple[int, str]) -> str:
    """Why a form meant for step ``meant_for`` is not sent, and what waits now."""
    who = _signed_by(engine, request_key, signer=signer, meant_for=meant_for)
    return (f"step {meant_for[1]} (revision {meant_for[0]}) of {request_key} was {who}; it "
            f"now waits on {now[1]} (revision {now[0]}); your form was not used — sign again "
            "if you mean that step")


def _last_audit_id(engine: Engine, request_key: str) -> int:
    with new_session(engine) as session:
        last = session.exec(select(AuditEvent.id).where(AuditEvent.request_key == request_key)
                            .order_by(col(AuditEvent.id).desc()).limit(1)).first()
    return last or 0


@dataclass(frozen=True)
class _Record:
    form_key: str
    action: str  # decision | refused | resubmitted | withdrawn
    step: str
    reason: str


def _recorded(engine: Engine, request_key: str, *, signer: str,
              after_id: int) -> _Record | None:
    """The first form by ``signer`` recorded on the request since audit row ``after_id``.

    Matched by signer, not by the key the sender read: Prefect stores an answer under the
    form the run waits on when the resume call is *processed*, so an answer sent while
    another form was being counted can land on the next form (measured: two countersigners
    resuming together both got ACCEPT, the second answer landing on the following form).
    """
    with new_session(engine) as session:
        rows = session.exec(select(AuditEvent).where(
            AuditEvent.request_key == request_key, col(AuditEvent.id) > after_id,
            AuditEvent.actor_id == signer).order_by(col(AuditEvent.id)))
        for row in rows:
            details = json.loads(row.content).get("details", {})
            if details.get("form"):
                return _Record(str(details["form"]), row.action, str(details.get("step", "")),
                               str(details.get("reason", "")))
    return None


def send_form(
    engine: Engine, *, flow_run_id: UUID, request_key: str, run_input: dict[str, Any],
    wait: bool = True, timeout: float = 120.0, poll: float = 0.3,
    sleep: Callable[[float], None] = time.sleep,
) -> SentForm:
    """Resume the run waiting on ``request_key`` with ``run_input``; see the module text.

    The form is meant for the step waiting when this is called (or, between two steps, the
    next one to wait); if that step is signed by someone else first, nothing more is sent.
    Raises ``BadInput`` (the form does not fit the waiting step's schema, or the request is
    not waiting), ``FormRefused`` (exit 3) and ``FormNotProcessed`` (timeout).
    """
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    signer = str(run_input.get("signer", "")).strip()
    meant_for = _waiting(engine, request_key)  # the step the sender saw waiting, if any now
    start = _last_audit_id(engine, request_key)
    with get_client(sync_client=True) as client:
        while True:
            key, meant_for = _send_once(client, engine, flow_run_id=flow_run_id,
                                        request_key=request_key, run_input=run_input,
                                        meant_for=meant_for, deadline=deadline, poll=poll,
                                        sleep=sleep)
            if key is None:
                continue  # another form won the race: ask again when the run waits again
            if not wait:
                return SentForm(form_key=key, step=meant_for[1])
            found = _await_record(client, engine, flow_run_id=flow_run_id,
                                  request_key=request_key, form_key=key, signer=signer,
                                  after_id=start, deadline=deadline, poll=poll, sleep=sleep)
            if found is None:
                continue  # the answer was not the one read, or never arrived: send it again
            if found.action != "refused":
                return SentForm(form_key=found.form_key, step=found.step or meant_for[1],
                                outcome=found.action)
            if found.step and found.step != meant_for[1]:
                who = _signed_by(engine, request_key, signer=signer, meant_for=meant_for)
                raise FormRefused(
                    f"step {meant_for[1]} of {request_key} was {who}; your form reached the "
                    f"next step ({found.step}) and was refused there: {found.reason}")
            raise FormRefused(f"{request_key}: your form ({found.form_key}) was refused: "
                              f"{found.reason}")


def _send_once(
    client: Any, engine: Engine, *, flow_run_id: UUID, request_key: str,
    run_input: dict[str, Any], meant_for: tuple[int, str] | None, deadline: float,
    poll: float, sleep: Callable[[float], None],
) -> tuple[str | None, tuple[int, str]]:
    """Wait until the run waits for a form on the step meant, resume it; (the form's key, or
    None when another form got there first; the step)."""
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.input import keyset_from_paused_state

    while True:
        if time.monotonic() > deadline:
            raise FormNotProcessed(f"{request_key}: the run did not take the form in time; "
                                   "see the status command")
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            raise BadInput(f"{request_key} is not waiting for a form: its run ended "
                           f"({state.name}{': ' + state.message if state.message else ''})",
                           column="ID")
        waiting = _waiting(engine, request_key)
        if state is None or not state.is_paused() or waiting is None:
            sleep(poll)  # another form is being processed, or the run is (re)starting
            continue
        if meant_for is None:
            meant_for = waiting
        elif waiting != meant_for:
            raise FormRefused(_signed_meanwhile(
                engine, request_key, signer=str(run_input.get("signer", "")).strip(),
                meant_for=meant_for, now=waiting))
        try:
            client.read_flow_run_input(flow_run_id, keyset_from_paused_state(state)["schema"])
        except Exception:  # noqa: BLE001 - the form is not saved yet
            sleep(poll)
            continue
        key = str(state.state_details.pause_key)
        try:
            result = client.resume_flow_run(flow_run_id, run_input=run_input)
        except httpx.HTTPError:  # no answer: whether it was taken shows in the record
            return key, meant_for
        if result.status == SetStateStatus.ACCEPT:
            return key, meant_for
        reason = getattr(result.details, "reason", "") or ""
        if result.status == SetStateStatus.REJECT and reason.startswith("Reason:"):
            raise BadInput(f"the form does not fit step {waiting[1]}: {reason}", column="form")
        sleep(poll)
        return None, meant_for


def _await_record(
    client: Any, engine: Engine, *, flow_run_id: UUID, request_key: str, form_key: str,
    signer: str, after_id: int, deadline: float, poll: float, sleep: Callable[[float], None],
) -> _Record | None:
    """The record of the signer's form; None when it was not the one read (the run waits on
    a form again with nothing of the signer's recorded) or never arrived."""
    while time.monotonic() < deadline:
        state = client.read_flow_run(flow_run_id).state  # first: a record precedes a new wait
        found = _recorded(engine, request_key, signer=signer, after_id=after_id)
        if found is not None:
            return found
        if state is not None and state.is_paused():
            return None  # the run waits again (on this form or a later one) without ours
        if state is not None and state.is_final():
            raise BadInput(f"{request_key}: the run ended ({state.name}) before your form "
                           f"({form_key}) was recorded", column="ID")
        sleep(poll)
    raise FormNotProcessed(
        f"{request_key}: Prefect took the form ({form_key}) but the run has not recorded it "
        f"within the time allowed; it is counted when the run continues — see the status "
        "command")
