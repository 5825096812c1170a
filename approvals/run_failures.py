"""Why a flow run failed, kept where the command that started it can read it.

Every approval flow's failure hook (``record_failure_hook``, one of ``waiting.ANSWER_HOOKS``)
appends a ``run-failed`` audit row under the request's key (read from the run's parameters;
``run:<flow run id>`` when they name no request): the run, the error's class, its exit code
(``BrokerflowError.exit_code``; 1 for anything else) and its message.  The command line reads
it back (``recorded_failure``) to exit with that code and reason; status commands show the
request's last one (``last_failure``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BrokerflowError
from brokerflow.kernel.models import AuditEvent

log = logging.getLogger(__name__)

ACTION = "run-failed"
#: Prefect's text before the error in a failed run's state message.
PREFECT_PREFIX = "Flow run encountered an exception:"


@dataclass(frozen=True)
class RunFailure:
    """The error a flow run ended with."""

    error: str  # the exception's class name
    exit_code: int
    reason: str


def failure_key(flow_run_id: str, parameters: dict[str, Any] | None = None) -> str:
    """The request key a run's parameters name (each flow's own key), else ``run:<id>``."""
    p = parameters or {}
    for name, kind in (("filing_id", "filing"), ("attribution_id", "attribution"),
                       ("change_id", "level"), ("movement_id", "risk-fund"),
                       ("import_id", "opening-import")):
        if p.get(name) is not None:
            return f"{kind}:{p[name]}"
    if p.get("branch") and p.get("month"):
        return f"payroll:{p['branch']}:{p['month']}"
    if p.get("branch") and p.get("quarter"):
        return f"evaluation:{p['branch']}:{p['quarter']}"
    return f"run:{flow_run_id}"


def failure_of(exc: BaseException) -> RunFailure:
    """The failure an exception stands for (its exit code when it is one of ours)."""
    code = exc.exit_code if isinstance(exc, BrokerflowError) else 1
    return RunFailure(type(exc).__name__, int(code), str(exc) or type(exc).__name__)


def failure_from_message(message: str) -> RunFailure:
    """A failure read from a failed state's message (``Name: text``): the exit code of the
    BrokerflowError class of that name (of the classes imported here), else 1."""
    text = message.strip()
    if text.startswith(PREFECT_PREFIX):
        text = text[len(PREFECT_PREFIX):].strip()
    name, sep, reason = text.partition(": ")
    if not sep or not name.isidentifier():
        return RunFailure("", 1, text or "the run failed")
    classes: list[type[BrokerflowError]] = [BrokerflowError]
    found: dict[str, int] = {}
    while classes:
        cls = classes.pop()
        found.setdefault(cls.__name__, int(cls.exit_code))
        classes.extend(cls.__subclasses__())
    return RunFailure(name, found.get(name, 1), reason)


def record_failure(engine: Engine, flow_run_id: str, failure: RunFailure, *,
                   request_key: str = "") -> None:
    from brokerflow.kernel.audit import append_audit

    with new_session(engine) as session:
        append_audit(session, actor_id="(flow run)", action=ACTION,
                     request_key=(request_key or failure_key(flow_run_id))[:64],
                     details={"flow_run": flow_run_id, "error": failure.error,
                              "exit_code": failure.exit_code, "reason": failure.reason[:2000]})
        session.commit()


def _failure(row: AuditEvent) -> RunFailure:
    details = json.loads(row.content).get("details", {})
    return RunFailure(str(details.get("error", "")), int(details.get("exit_code", 1)),
                      str(details.get("reason", "")))


def recorded_failure(engine: Engine, flow_run_id: str) -> RunFailure | None:
    """The failure the run's hook recorded, if any."""
    with new_session(engine) as session:
        rows = session.exec(select(AuditEvent).where(
            AuditEvent.action == ACTION, col(AuditEvent.content).contains(flow_run_id))
            .order_by(col(AuditEvent.id).desc()))
        for row in rows:
            if json.loads(row.content).get("details", {}).get("flow_run") == flow_run_id:
                return _failure(row)
    return None


def last_failure(engine: Engine, request_key: str) -> tuple[str, RunFailure] | None:
    """The last failed run of a request: (its flow run id, its failure)."""
    with new_session(engine) as session:
        row = session.exec(select(AuditEvent).where(
            AuditEvent.action == ACTION, AuditEvent.request_key == request_key)
            .order_by(col(AuditEvent.id).desc())).first()
    if row is None:
        return None
    return str(json.loads(row.content).get("details", {}).get("flow_run", "")), _failure(row)


def record_failure_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: a failed run leaves its error (class, exit code, message) in the audit.

    Never raises: a hook must not hide the run's own failure."""
    if not state.is_failed():
        return
    try:
        exc = state.result(raise_on_failure=False, retry_result_failure=False)
    except Exception:  # noqa: BLE001 - the result could not be read: the message says it
        exc = None
    try:
        failure = (failure_of(exc) if isinstance(exc, BaseException)
                   else failure_from_message(state.message or ""))
        from brokerflow.kernel.db import make_engine
        from brokerflow.kernel.settings import load_settings

        engine = make_engine(load_settings().database_url)
        try:
            record_failure(engine, str(flow_run.id), failure, request_key=failure_key(
                str(flow_run.id), dict(getattr(flow_run, "parameters", None) or {})))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - the run's failure stands as it is
        log.warning("flow run %s: its failure was not recorded: %s", flow_run.id, exc)
