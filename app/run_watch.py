"""Start a deployment's run and wait until it has accepted or refused the step (SPEC §10,
"Commands tell the truth").

Accepted: the run waits for a signature (its request's ``WaitingStep`` and a paused run: the
step and who may sign it are printed), or it finished.  Refused: the run failed; the reason
is the error its failure hook recorded (``approvals.run_failures``: class, exit code,
message), else Prefect's state message, and the command exits with that error's code.  No
answer in time: exit 1 saying the run is still going, never success.  Prefect is imported
only inside the functions (the command line starts without it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BrokerflowError
from brokerflow.kernel.models import User, UserRole, WaitingStep

if TYPE_CHECKING:
    from brokerflow.archive.service import Archive

#: Seconds a start command waits for its run by default.
DEFAULT_TIMEOUT = 180.0
#: A paused run with no waiting step recorded (a form of another kind) counts as waiting after.
UNRECORDED_PAUSE_SECONDS = 3.0
#: How long a failed run's hook may take to record why.
FAILURE_RECORD_SECONDS = 5.0


class RunRefused(BrokerflowError):
    """The run refused the step (or failed): exit code of the flow's error (2, 3, or 1)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunStillGoing(BrokerflowError):
    """The run neither waited for a signature nor ended in the time allowed (exit 1)."""


def start_and_wait(archive: Archive, deployment: str, parameters: dict[str, Any], *,
                   request_key: str, no_wait: bool = False,
                   timeout: float = DEFAULT_TIMEOUT, status_hint: str = "") -> str:
    """Start a run of ``deployment`` (its id printed as ``flow run ID``); unless ``no_wait``,
    wait for it (``watch_run``) and print what it waits on.  The run's id."""
    from brokerflow.app.runs import start_deployment

    run_id = start_deployment(deployment, parameters)
    print(f"flow run {run_id}", flush=True)
    if not no_wait:
        wait_and_report(archive, run_id, request_key=request_key, timeout=timeout,
                        status_hint=status_hint)
    return run_id


def wait_and_report(archive: Archive, run_id: str, *, request_key: str, timeout: float,
                    status_hint: str = "") -> str:
    """``watch_run`` with a spinner on stderr; prints (and returns) what the run waits on."""
    from brokerflow.app.cli._progress import watching

    with watching(f"flow run {run_id}") as note:
        accepted = watch_run(archive, run_id, request_key=request_key, timeout=timeout,
                             note=note, status_hint=status_hint)
    print(accepted)
    return accepted


def watch_run(archive: Archive, run_id: str, *, request_key: str, timeout: float,
              note: Callable[[str], None] = lambda _: None, status_hint: str = "",
              poll: float = 0.4, sleep: Callable[[float], None] = time.sleep) -> str:
    """Wait until run ``run_id`` waits for a signature on ``request_key`` or ends; what it
    waits on (or its result).  Raises ``RunRefused`` (it failed: the flow's reason and exit
    code) or ``RunStillGoing`` (``timeout`` passed)."""
    from brokerflow.app.runs import use_local_stack_api

    use_local_stack_api()
    from prefect.client.orchestration import get_client

    started = time.monotonic()
    paused_since: float | None = None
    hint = f"; see {status_hint!r}" if status_hint else ""
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(run_id)).state
            name = state.name if state is not None and state.name else "Scheduled"
            if state is not None and state.is_paused():
                with new_session(archive.engine) as session:
                    waiting = session.get(WaitingStep, request_key)
                if waiting is not None:
                    return describe_waiting(archive, waiting)
                paused_since = paused_since or time.monotonic()
                if time.monotonic() - paused_since > UNRECORDED_PAUSE_SECONDS:
                    return f"flow run {run_id} waits for a form ({name}){hint}"
            elif state is not None and state.is_completed():
                return f"flow run {run_id} finished: {_result_text(state)}"
            elif state is not None and state.is_final():
                raise _refusal(archive, run_id, state, hint=hint, sleep=sleep)
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise RunStillGoing(
                    f"flow run {run_id} has neither reached a signature step nor ended within "
                    f"{timeout:.0f} s (it is {name}); it may still do so — nothing is known to "
                    f"have succeeded{hint}")
            note(f"{name}, {elapsed:.0f} s")
            sleep(poll)


def _result_text(state: Any) -> str:
    try:
        result = state.result(raise_on_failure=False, retry_result_failure=False)
    except Exception:  # noqa: BLE001 - the result is stored where the run ran
        result = None
    return str(result) if isinstance(result, str | int) else state.name or "Completed"


def _refusal(archive: Archive, run_id: str, state: Any, *, hint: str,
             sleep: Callable[[float], None]) -> BrokerflowError:
    """The error a command exits with for a run that ended Failed, Crashed or Cancelled."""
    from brokerflow.approvals.run_failures import failure_from_message, recorded_failure

    if not state.is_failed():
        message = (state.message or "").strip()
        return RunRefused(f"flow run {run_id} ended {state.name}"
                          + (f": {message}" if message else "") + hint, 1)
    deadline = time.monotonic() + FAILURE_RECORD_SECONDS
    failure = recorded_failure(archive.engine, run_id)
    while failure is None and time.monotonic() < deadline:  # the hook runs after the state
        sleep(0.3)
        failure = recorded_failure(archive.engine, run_id)
    if failure is None:
        failure = failure_from_message(state.message or "")
    if failure.exit_code in (2, 3):
        return RunRefused(f"refused: {failure.reason}", failure.exit_code)
    error = f"{failure.error}: " if failure.error else ""
    return RunRefused(f"flow run {run_id} failed: {error}{failure.reason}{hint}",
                      failure.exit_code)


def describe_waiting(archive: Archive, waiting: WaitingStep) -> str:
    """``waiting on STEP (label); may sign: role (users) ...`` for a request's waiting step."""
    from sqlmodel import select

    from brokerflow.app.inbox import READERS
    from brokerflow.approvals.chain import Waiting, progress
    from brokerflow.approvals.decisions import load_decisions

    kind, _, rest = waiting.request_key.partition(":")
    text = f"{waiting.request_key} waiting on {waiting.step}"
    with new_session(archive.engine) as session:
        reader = READERS.get(kind)
        request = reader(session, waiting, rest) if reader is not None else None
        if request is None or request.chain is None:
            return text
        decisions = load_decisions(session, request_key=waiting.request_key,
                                   revision=waiting.revision, zone=archive.zone)
        state = progress(request.chain, decisions)
        if not isinstance(state, Waiting) or state.step.name != waiting.step:
            return text
        who = []
        for role in state.may_sign:
            query = select(User.user_id).join(
                UserRole, UserRole.user_id == User.user_id).where(  # type: ignore[arg-type]
                UserRole.role == role)
            if request.signer_branch is not None:
                query = query.where(User.branch == request.signer_branch)
            users = sorted(set(session.exec(query)))
            who.append(f"{role} ({', '.join(users)})" if users else role)
    return f"{text} ({state.step.label}); may sign: {'; '.join(who) or '-'}"
