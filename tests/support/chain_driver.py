"""Drive a flow that waits for approval forms, as managers do in the Prefect UI: wait until
the run is paused, then ``resume_flow_run(id, run_input=...)``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.input import keyset_from_paused_state


class ChainDriver:
    """Runs ``flow_call`` in a thread; ``attempts`` reads how many forms were processed."""

    def __init__(self, flow_call: Callable[[], Any], *, run_id: Callable[[], str | None],
                 attempts: Callable[[], int]) -> None:
        self._flow_call = flow_call
        self._run_id = run_id
        self._attempts = attempts
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self._flow_call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def start(self) -> ChainDriver:
        self._thread.start()
        return self

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def flow_run_id(self, timeout: float = 60) -> UUID:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run_id = self._run_id()
            if run_id:
                return UUID(run_id)
            self._raise_if_died()
            time.sleep(0.05)
        raise TimeoutError("the flow never registered its run id")

    def _raise_if_died(self) -> None:
        if self.finished and self.error is not None:
            raise AssertionError(f"the flow failed: {self.error!r}") from self.error

    def wait_paused(self, timeout: float = 60) -> str:
        """Wait until the run is paused with its form saved; return the pause key."""
        run_id = self.flow_run_id()
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                self._raise_if_died()
                if self.finished:
                    raise AssertionError(f"the flow ended instead of waiting: {self.result!r}")
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_paused():
                    keyset = keyset_from_paused_state(state)
                    try:
                        client.read_flow_run_input(run_id, keyset["schema"])
                        return str(state.state_details.pause_key)
                    except Exception:  # noqa: BLE001 - schema not saved yet
                        pass
                time.sleep(0.05)
        raise TimeoutError("the flow run did not pause")

    def description(self) -> str:
        run_id = self.flow_run_id()
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
            assert state is not None
            return client.read_flow_run_input(run_id, keyset_from_paused_state(state)[
                "description"])

    def submit(self, run_input: dict[str, Any], timeout: float = 60) -> None:
        """Resume with ``run_input``; return when that form was processed and the flow waits
        again or has ended."""
        before = self._attempts()
        self.wait_paused()
        resume_flow_run(self.flow_run_id(), run_input=run_input)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_if_died()
            if self.finished:
                return
            if self._attempts() > before:
                try:
                    self.wait_paused(timeout=max(1.0, deadline - time.monotonic()))
                except AssertionError:
                    if self.finished:
                        self._raise_if_died()
                        return
                    raise
                return
            time.sleep(0.05)
        raise TimeoutError("the form was not processed")

    def sign(self, signer: str, decision: str = "approve", opinion: str = "",
             departments: list[str] | None = None, secret: str | None = None) -> None:
        run_input: dict[str, Any] = {"signer": signer, "secret": secret or f"pw-{signer}",
                                     "decision": decision, "opinion": opinion}
        if departments is not None:
            run_input["countersign_departments"] = departments
        self.submit(run_input)

    def join(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert self.finished, "the flow did not finish"
        self._raise_if_died()
        return self.result


def run_found_by_name(name: str) -> Callable[[], str | None]:
    """``run_id`` for a run started elsewhere (the Prefect UI) under ``name``: its id once it
    exists, remembered -- the chain renames its run once it waits for a signature."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    found: list[str] = []

    def run_id() -> str | None:
        if not found:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
            found.extend(str(r.id) for r in runs[:1])
        return found[0] if found else None

    return run_id
