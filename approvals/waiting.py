"""The approval engine's Prefect seam: wait for a form, hand its answer over, then forget it.

A form's stored answer holds the signer's secret.  It is deleted from Prefect only after the
flow has recorded what it did with it (counted or refused) in its own database -- on a local
SQLite Prefect so that no byte of it stays in the file or its WAL -- so a run that
dies between reading and recording reads the same answer again when it runs again.  Once the
outcome is recorded the request's form counter has moved on, so the same key is never asked
for again.  Answers a run never consumed are discarded when it fails, crashes or is
cancelled (flow hooks, and the serve process's sweep for runs whose process is gone).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

from brokerflow.approvals.run_failures import record_failure_hook
from brokerflow.approvals.run_labels import AWAIT_PREFIX, moved_tags
from brokerflow.kernel.failpoints import failpoint
from brokerflow.kernel.periodic import repeating

log = logging.getLogger(__name__)

WaitMode = Literal["pause", "suspend"]
F = TypeVar("F")

#: How long a paused (in-process) step may wait before Prefect fails the run.
PAUSE_TIMEOUT_SECONDS = 30 * 24 * 3600
#: Prefixes of the run-input keys Prefect gives paused and suspended forms.
FORM_KEY_PREFIXES = ("paused-", "suspended-")


@contextmanager
def awaited_form(
    form: type[F], *, description: str, key: str, mode: WaitMode, poll_interval: float = 10.0
) -> Iterator[F]:
    """Pause (in-process) or suspend (no process held) until the form is submitted; yield it.

    Record the outcome inside the ``with`` block: the stored answer is deleted from Prefect
    only when the block ends without an exception.
    """
    from prefect.flow_runs import pause_flow_run, suspend_flow_run
    from prefect.input import keyset_from_base_key

    with_text = form.with_initial_data(description=description)  # type: ignore[attr-defined]
    if mode == "suspend":
        answer = suspend_flow_run(wait_for_input=with_text, key=key)
        base = f"suspended-{key}"
    else:
        answer = pause_flow_run(wait_for_input=with_text, key=key,
                                timeout=PAUSE_TIMEOUT_SECONDS,
                                poll_interval=poll_interval)  # type: ignore[call-overload]
        base = f"paused-{key}"
    failpoint("form.read")
    yield answer
    failpoint("form.recorded")
    _discard_recorded(keyset_from_base_key(base)["response"])


def _discard_recorded(key: str) -> None:
    """Delete the recorded answer -- and any earlier one a killed run left behind (its key is
    never asked for again).  Safe: while this runs the run is not waiting, so no answer can be
    stored that has not been recorded."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        _delete_if_present(client, context.flow_run.id, key)
        discard_form_answers(client, context.flow_run.id)


def _delete_if_present(client: Any, flow_run_id: UUID, key: str) -> bool:
    import httpx

    if secure_delete_locally(flow_run_id, key):
        return True
    try:
        client.delete_flow_run_input(flow_run_id=flow_run_id, key=key)
        return True
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise


def prefect_sqlite_file() -> Path | None:
    """Prefect's database when it is a SQLite file on this machine (the local stack); else
    None (PostgreSQL, or a server elsewhere)."""
    from prefect.settings import get_current_settings

    url: Any = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url or "")
    if not text.startswith("sqlite"):
        return None
    path = Path(text.split("///", 1)[-1])
    return path if path.is_file() else None


def secure_delete_locally(flow_run_id: UUID, key: str) -> bool:
    """Delete a stored answer so that nothing of it stays in Prefect's SQLite files: deleted
    with ``secure_delete`` (its bytes overwritten with zeros), then the WAL checkpointed into
    the file and truncated (SPEC §2.1).  False when Prefect's database is not a local SQLite
    file, or the answer was not there; the caller then deletes through the API."""
    path = prefect_sqlite_file()
    if path is None:
        return False
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA secure_delete = ON")
        connection.execute("BEGIN IMMEDIATE")
        deleted = connection.execute(
            "DELETE FROM flow_run_input WHERE flow_run_id = ? AND key = ?",
            (str(flow_run_id), key)).rowcount
        connection.execute("COMMIT")
        for _ in range(50):  # readers on an older snapshot hold the WAL back for a moment
            busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                break
            time.sleep(0.1)
        return deleted > 0
    except sqlite3.Error:
        return False
    finally:
        connection.close()


def is_form_answer_key(key: str) -> bool:
    """Whether a run-input key holds a submitted form (as opposed to its schema/description)."""
    return key.startswith(FORM_KEY_PREFIXES) and key.endswith("-response")


def discard_form_answers(client: Any, flow_run_id: UUID) -> int:
    """Delete every submitted form still stored for a run; how many there were."""
    deleted = 0
    for prefix in FORM_KEY_PREFIXES:
        for stored in client.filter_flow_run_input(flow_run_id=flow_run_id, key_prefix=prefix,
                                                   limit=200, exclude_keys=set()):
            if is_form_answer_key(stored.key) and _delete_if_present(client, flow_run_id,
                                                                     stored.key):
                deleted += 1
    return deleted


def discard_answers_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (completion, failure, cancellation): no answer of this run is left in Prefect.

    Not on a crash: a crashed run is run again by the recovery sweep and needs its answers.
    """
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        discard_form_answers(client, flow_run.id)


def current_flow_run_id() -> str:
    """The id of the flow run this code runs in, also inside its tasks ('' outside one)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    return str(flow_run.id) if flow_run else ""


def wake_run(run_id: str, run_input: dict[str, Any]) -> bool:
    """Resume ``run_id`` with ``run_input`` (a blank form) if it waits for a form, so that it
    looks at its deadline; whether Prefect took it (False: not waiting, or another form came
    first).  The flow decides what a blank form means: nothing counts by itself."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
        if run.state is None or not run.state.is_paused():
            return False
        result = client.resume_flow_run(UUID(run_id), run_input=run_input)
    return bool(result.status == SetStateStatus.ACCEPT)


@contextmanager
def waking_when(due: Callable[[], bool], *, run_input: dict[str, Any],
                poll_interval: float) -> Iterator[None]:
    """While the block runs, a thread asks ``due()`` every ``poll_interval`` seconds and, once
    it holds, wakes this flow run whenever it waits (``wake_run``): a paused (in-process) run
    sees its deadline pass.  A suspended run has no process: ``approval-reminders`` wakes it."""
    run_id = current_flow_run_id()
    if not run_id:
        yield
        return
    def wake_if_due() -> None:
        if due():
            wake_run(run_id, run_input)

    with repeating(wake_if_due, every=max(poll_interval, 0.05), name=f"wake-{run_id}",
                   tolerated=(Exception,), log=log, what=f"wake flow run {run_id}"):
        yield


def label_run(flow_run_id: str, *, name: str | None = None, add: Sequence[str] = (),
              drop_prefixes: Sequence[str] = (AWAIT_PREFIX,)) -> bool:
    """Rename a run and move its tags (``run_labels.moved_tags``); whether Prefect took it.

    Labels never break a chain: any trouble is logged as a warning and the chain goes on.
    """
    if not flow_run_id:
        return False
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            tags = moved_tags(list(run.tags or []), add=add, drop_prefixes=drop_prefixes)
            if tags == list(run.tags or []) and (name is None or name == run.name):
                return True
            client.update_flow_run(UUID(flow_run_id), name=name, tags=tags)
        return True
    except Exception as exc:  # noqa: BLE001 - a label is never worth a failed chain
        log.warning("flow run %s not relabelled: %s", flow_run_id, exc)
        return False


def label_current_run(*, name: str | None = None, add: Sequence[str] = (),
                      drop_prefixes: Sequence[str] = (AWAIT_PREFIX,)) -> bool:
    """``label_run`` on the flow run this code runs in (False outside one)."""
    return label_run(current_flow_run_id(), name=name, add=add, drop_prefixes=drop_prefixes)


def clear_await_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook: a run that ended waits for nobody (its ``await:`` tags go)."""
    label_run(str(flow_run.id))


def prefect_ui_url() -> str:
    """The Prefect UI's address as this process's settings give it ('' when unknown)."""
    from prefect.settings import get_current_settings

    return str(get_current_settings().ui_url or "")


#: Every approval flow's ``on_completion``, ``on_failure`` and ``on_cancellation`` hooks
#: (a failure's reason is kept for the command that started the run: ``run_failures``).
ANSWER_HOOKS: list[Any] = [discard_answers_hook, clear_await_hook, record_failure_hook]
