"""Approval latency benchmark: from ``resume_flow_run`` to the next approval step waiting.

Run: .venv/bin/python bench/approval_latency_bench.py [--pause-filings 4] [--no-suspend]

"Waiting" means the flow run is Paused (pause mode) or Suspended (suspend mode) with a new pause
key, as read from the Prefect API, AND the input schema of the new form can be read with
``read_flow_run_input``.  That is when a manager can open the form in the UI.  The benchmark
process polls the API every POLL_SLEEP seconds plus the time of the request, and prints the
observed period.  The clock starts just before ``resume_flow_run`` is called.  The form is
resumed as soon as it is seen.  The flow's first check comes ``poll_interval`` after it saved
the schema, so an immediate resume costs about a full poll interval.  This is near the worst
case for the poll phase.

Setup, as tests/conftest.py does: MotoS3Server on 127.0.0.1 (a thread of this process), the
BROKERFLOW_* variables (temp home, SQLite file, endpoint, keys, bucket, secret key), the sample
roster tests/data/roster.csv, and ``prefect_test_harness(server_startup_timeout=180)`` (a real
Prefect server in a subprocess, SQLite).

  (a) pause mode: ``filing_chain(filing_id, wait="pause", poll_interval=0.5)`` in a thread of
      this process, with N full chains (6 signatures, 5 resume -> next waiting each).  Then one
      short chain (channel names no department: 3 resume -> next waiting) with
      poll_interval=10, Prefect's default.
  (b) suspend mode: the ``filing-chain/filing-chain`` deployment served by a ``brokerflow
      serve`` child (cwd = repo).  Runs are created with
      ``brokerflow.app.runs.start_deployment``.  First with PREFECT_RUNNER_POLL_FREQUENCY=1 (a full
      chain), then with the default (10; a short chain).  The deployment is deleted between
      the two serve processes so that registration by the second one can be seen.  ``serve``
      starts each run's process from its preloaded forkserver; run the script with
      BROKERFLOW_SERVE_START=spawn in the environment to measure Prefect's own spawn.  For each
      resume the run's state history (Resuming, Pending, Running, ...) is printed as offsets
      from the resume.  At the end, the script times the cold imports a resumed run pays:
      fresh interpreters importing prefect.flow_engine (and flows.filing), 3 times each.
  (c) whole chains of (a) at poll 0.5: wall time from the thread start to the API showing
      Completed, and the time spent in ``_archive_request_document`` (FIL) and
      ``_archive_result_document`` (FOP), with the ``render_pdf`` part of each.

Not a test: prints figures only.  Bounded: a global budget (default 450 s) is checked in every
wait.  Everything started here (S3 thread, Prefect server, serve child) is stopped on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now, set_env, timed  # noqa: E402  (bench/ is on sys.path when run)
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.flow_runs import resume_flow_run  # noqa: E402
from prefect.input import keyset_from_paused_state  # noqa: E402

import brokerflow.flows.filing as filing_module  # noqa: E402
from brokerflow.app.runs import start_deployment  # noqa: E402
from brokerflow.app.s3server import MotoS3Server  # noqa: E402
from brokerflow.approvals.filings import create_filing  # noqa: E402
from brokerflow.archive.service import Archive, open_archive  # noqa: E402
from brokerflow.kernel.db import new_session  # noqa: E402
from brokerflow.kernel.models import Filing  # noqa: E402
from brokerflow.kernel.render import DocumentRenderer  # noqa: E402
from brokerflow.kernel.roster import get_user_view, load_roster  # noqa: E402
from brokerflow.kernel.settings import load_settings  # noqa: E402

ROSTER_CSV = ROOT / "tests" / "data" / "roster.csv"
DEPLOYMENT = "filing-chain/filing-chain"
POLL_SLEEP = 0.025
GOAL_S = 3.0

#: (signer, departments named) in chain order; the 2-department chain has 6 signatures.
Chain = list[tuple[str, list[str] | None]]
FULL_CHAIN: Chain = [("bo1", None), ("ch1", ["compliance", "risk"]), ("comp1", None),
                     ("risk1", None), ("bo2", None), ("vp1", None)]
#: The channel names no department: office_receive, channel_review, office_complete, vp.
SHORT_CHAIN: Chain = [("bo1", None), ("ch1", []), ("bo2", None), ("vp1", None)]
STEP_OF = {"bo1": "office_receive", "ch1": "channel_review", "comp1": "countersign",
           "risk1": "countersign", "bo2": "office_complete", "vp1": "vp_instruction"}


class OutOfBudget(RuntimeError):
    pass


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def deadline(self, timeout: float) -> float:
        return min(time.monotonic() + timeout, self.end)

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise OutOfBudget("the global time budget is used up")


@dataclass
class Seen:
    at: float  # monotonic time of the poll that saw it
    state: Any
    polls: int
    gap: float  # time between the last poll that did not see it and this one


@dataclass
class Sample:
    mode: str
    setting: str
    step: str  # the step that was signed
    latency: float  # resume_flow_run called -> next step waiting (or run Completed)
    resume_call: float  # duration of the resume_flow_run call
    gap: float
    final: bool = False
    #: first time each state name appeared after the resume, from the run's state history
    #: (state timestamps; same machine clock), seconds after the resume call started
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class ChainTiming:
    label: str
    total: float = 0.0
    to_first_wait: float = 0.0
    latencies: float = 0.0
    times: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- timing hooks

TIMES: dict[str, float] = defaultdict(float)
_times_lock = threading.Lock()


def _add_time(name: str, start: float, end: float) -> None:
    with _times_lock:
        TIMES[name] += end - start


def _timed(label: str | Callable[..., str], original: Callable[..., Any]) -> Callable[..., Any]:
    return timed(label, original, _add_time)


def install_hooks() -> None:
    """Time FIL/FOP archiving and rendering in this process (the pause-mode flows)."""
    filing_module.archive_step = _timed(  # type: ignore[assignment]  # FIL, FOP
        lambda archive, spec, *a, **k: f"{spec.doc_type} archive", filing_module.archive_step)
    DocumentRenderer.render_pdf = _timed(  # type: ignore[method-assign]
        lambda self, doc_type, *a, **k: f"{doc_type} render", DocumentRenderer.render_pdf)


# --------------------------------------------------------------------------- setup


def new_filing(archive: Archive, subject: str) -> int:
    with new_session(archive.engine) as session:
        submitter = get_user_view(session, "bk1")
        assert submitter is not None
        filing = create_filing(session, branch="SZ01", kind="marketing_plan", subject=subject,
                               body="拟于2027年开展银行网点驻点营销。", submitter=submitter)
        session.commit()
        assert filing.id is not None
        return filing.id


def filing_row(archive: Archive, filing_id: int) -> Filing:
    with new_session(archive.engine) as session:
        filing = session.get(Filing, filing_id)
        assert filing is not None
        return filing


def form(signer: str, departments: list[str] | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"signer": signer, "secret": f"pw-{signer}", "decision": "approve",
                              "opinion": f"bench {signer}"}
    if departments is not None:
        answer["countersign_departments"] = departments
    return answer


# --------------------------------------------------------------------------- observing


def wait_for_form(client: Any, run_id: UUID, *, old_key: str | None, budget: Budget,
                  suspended: bool, timeout: float = 120,
                  alive: Callable[[], None] | None = None, log: Path | None = None) -> Seen:
    """Poll until the run waits on a form with a key other than ``old_key`` and its schema is
    readable, or the run is final (returned as such)."""
    deadline = budget.deadline(timeout)
    polls, last = 0, time.monotonic()
    while time.monotonic() < deadline:
        if alive:
            alive()
        state = client.read_flow_run(run_id).state
        now = time.monotonic()
        polls += 1
        if state is not None and state.is_paused() \
                and str(state.state_details.pause_key) != str(old_key):
            try:
                client.read_flow_run_input(run_id, keyset_from_paused_state(state)["schema"])
            except Exception:  # noqa: BLE001 - not saved yet
                pass
            else:
                now = time.monotonic()
                if suspended and state.name != "Suspended":
                    raise AssertionError(f"expected Suspended, got {state.name}")
                return Seen(now, state, polls, now - last)
        if state is not None and state.is_final():
            if not state.is_completed():
                tail = log.read_text(errors="replace")[-3000:] if log else ""
                raise AssertionError(f"run ended as {state.name}: {state.message}\n{tail}")
            return Seen(now, state, polls, now - last)
        last = now
        time.sleep(POLL_SLEEP)
    budget.check()
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise TimeoutError(f"run {run_id} did not wait again within {timeout:.0f}s\n{tail}")


def phases_after(client: Any, run_id: UUID, since: datetime) -> dict[str, float]:
    phases: dict[str, float] = {}
    for state in sorted(client.read_flow_run_states(run_id), key=lambda st: st.timestamp):
        offset = (state.timestamp - since).total_seconds()
        if offset >= 0:
            phases.setdefault(str(state.name), offset)
    return phases


def drive(client: Any, run_id: UUID, first: Seen, chain: Chain,
          *, mode: str, setting: str, budget: Budget, suspended: bool, samples: list[Sample],
          alive: Callable[[], None] | None = None, log: Path | None = None,
          timeout: float = 120) -> Seen:
    """Sign every step of ``chain``; one Sample per resume.  Returns the final Seen."""
    seen = first
    for signer, departments in chain:
        budget.check()
        old_key = str(seen.state.state_details.pause_key)
        w0 = datetime.now(UTC)
        t0 = time.monotonic()
        resume_flow_run(run_id, run_input=form(signer, departments))
        t1 = time.monotonic()
        seen = wait_for_form(client, run_id, old_key=old_key, budget=budget,
                             suspended=suspended, alive=alive, log=log, timeout=timeout)
        sample = Sample(mode, setting, STEP_OF[signer], seen.at - t0, t1 - t0, seen.gap,
                        final=seen.state.is_final())
        if suspended:
            sample.phases = phases_after(client, run_id, w0)
        samples.append(sample)
        what = "Completed" if sample.final else f"waiting ({seen.state.name})"
        phases = ", ".join(f"{k} +{v:.2f}" for k, v in sample.phases.items())
        print(f"  [{mode} {setting}] {sample.step:<16} -> {what:<20} {sample.latency:6.2f} s"
              f"  (resume call {sample.resume_call * 1000:.0f} ms, poll gap "
              f"{sample.gap * 1000:.0f} ms){'  states: ' + phases if phases else ''}",
              flush=True)
    if not seen.state.is_final():
        raise AssertionError(f"the chain did not finish: {seen.state}")
    return seen


# --------------------------------------------------------------------------- (a) + (c)


def pause_chain(client: Any, archive: Archive, *, poll: float, chain: Chain, label: str,
                budget: Budget, samples: list[Sample]) -> ChainTiming:
    filing_id = new_filing(archive, f"2027年度营销方案 {label}")
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = filing_module.filing_chain(filing_id=filing_id, wait="pause",
                                                         poll_interval=poll)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    def alive() -> None:
        if "error" in result:
            raise AssertionError(f"the flow failed: {result['error']!r}") from result["error"]

    with _times_lock:
        TIMES.clear()
    thread = threading.Thread(target=run, daemon=True)
    t_start = time.monotonic()
    thread.start()
    deadline = budget.deadline(120)
    while not filing_row(archive, filing_id).flow_run_id:
        alive()
        if time.monotonic() > deadline:
            budget.check()
            raise TimeoutError("the flow never registered its run id")
        time.sleep(POLL_SLEEP)
    run_id = UUID(filing_row(archive, filing_id).flow_run_id)
    first = wait_for_form(client, run_id, old_key=None, budget=budget, suspended=False,
                          alive=alive)
    timing = ChainTiming(label, to_first_wait=first.at - t_start)
    before = len(samples)
    last = drive(client, run_id, first, chain, mode="pause", setting=f"poll {poll:g}",
                 budget=budget, suspended=False, samples=samples, alive=alive,
                 timeout=max(60, 6 * poll))
    timing.total = last.at - t_start
    timing.latencies = sum(s.latency for s in samples[before:])
    thread.join(30)
    alive()
    filing = filing_row(archive, filing_id)
    if filing.status != "approved" or not str(result.get("value", "")).startswith("SZ01-FOP-"):
        raise AssertionError(f"filing {filing_id}: {filing.status} {result!r}")
    with _times_lock:
        timing.times = dict(TIMES)
    print(f"  chain {label}: total {timing.total:.2f} s, start -> first form "
          f"{timing.to_first_wait:.2f} s, "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(timing.times.items())),
          flush=True)
    return timing


# --------------------------------------------------------------------------- (b)


class Served:
    """``brokerflow serve`` as a child process in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "brokerflow"), "serve"], cwd=ROOT,
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"brokerflow serve exited ({self.process.returncode})\n"
                                 + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pgid = self.process.pid  # start_new_session: the group is the child's own
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def suspend_run(client: Any, archive: Archive, *, base_env: dict[str, str], tmp: Path,
                poll_frequency: int | None, chain: Chain, budget: Budget,
                samples: list[Sample], servers: list[Served]) -> dict[str, float]:
    from prefect.settings import PREFECT_API_URL

    setting = f"runner poll {poll_frequency or 'default (10)'}"
    name = f"serve-{poll_frequency or 'default'}"
    env = dict(os.environ, **base_env, PREFECT_API_URL=str(PREFECT_API_URL.value()),
               PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(tmp / f"prefect-home-{name}"))
    env.pop("PREFECT_RUNNER_POLL_FREQUENCY", None)
    if poll_frequency is not None:
        env["PREFECT_RUNNER_POLL_FREQUENCY"] = str(poll_frequency)
    # a deployment left by an earlier serve would look registered already
    with contextlib.suppress(Exception):
        client.delete_deployment(client.read_deployment_by_name(DEPLOYMENT).id)
    served = Served(env, tmp / f"{name}.log")
    servers.append(served)
    t0 = time.monotonic()
    served.start()
    deadline = budget.deadline(150)
    while True:
        served.alive()
        try:
            client.read_deployment_by_name(DEPLOYMENT)
            break
        except Exception:  # noqa: BLE001 - not registered yet
            if time.monotonic() > deadline:
                budget.check()
                raise TimeoutError(served.log.read_text(errors="replace")[-3000:]) from None
            time.sleep(0.2)
    registered = time.monotonic() - t0
    filing_id = new_filing(archive, f"2027年度人员招聘计划 {name}")
    t1 = time.monotonic()
    run_id = UUID(start_deployment(DEPLOYMENT, {"filing_id": filing_id}))
    first = wait_for_form(client, run_id, old_key=None, budget=budget, suspended=True,
                          alive=served.alive, log=served.log, timeout=150)
    to_first = first.at - t1
    print(f"  [{setting}] serve registered the deployment after {registered:.1f} s; "
          f"start_deployment -> first Suspended form {to_first:.2f} s", flush=True)
    drive(client, run_id, first, chain, mode="suspend", setting=setting, budget=budget,
          suspended=True, samples=samples, alive=served.alive, log=served.log, timeout=90)
    filing = filing_row(archive, filing_id)
    if filing.status != "approved":
        raise AssertionError(f"filing {filing_id}: {filing.status}")
    served.stop()
    return {"registered_s": registered, "start_to_first_suspended_s": to_first}


def cold_imports(budget: Budget, repeat: int = 3) -> dict[str, list[float]]:
    """Wall time of a fresh interpreter importing the flow engine (and the filing flow)."""
    found: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        for label, code in (("prefect.flow_engine", "import prefect.flow_engine"),
                            ("+ flows.filing", "import prefect.flow_engine, flows.filing")):
            if time.monotonic() > budget.end - 10:
                return dict(found)
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
            found[label].append(time.monotonic() - t0)
    return dict(found)


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[Sample]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, bool], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.mode, s.setting, s.final)].append(s)
    rows = []
    for (mode, setting, final), group in groups.items():
        values = [s.latency for s in group]
        rows.append({
            "mode": mode, "setting": setting,
            "to": "Completed (FOP archived)" if final else "next form waiting",
            "n": len(values), "p50": statistics.median(values), "p90": pct(values, 0.9),
            "max": max(values), "min": min(values), "mean": statistics.fmean(values),
            "resume_call_ms": statistics.fmean(s.resume_call for s in group) * 1000,
            "poll_gap_ms": statistics.fmean(s.gap for s in group) * 1000,
            "poll_gap_max_ms": max(s.gap for s in group) * 1000,
            "phases_mean": {name: statistics.fmean(s.phases[name] for s in group)
                            for name in group[0].phases
                            if all(name in s.phases for s in group)},
        })
    return rows


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import prefect

    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "nproc": str(os.cpu_count()), "python": platform.python_version(),
            "prefect": prefect.__version__, "loadavg": load_now(" ")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pause-filings", type=int, default=4,
                        help="full chains at poll_interval 0.5 (5 resume->form samples each)")
    parser.add_argument("--no-default-poll", action="store_true",
                        help="skip the pause-mode chain at poll_interval 10")
    parser.add_argument("--no-suspend", action="store_true", help="skip (b)")
    parser.add_argument("--budget", type=float, default=450, help="seconds, whole script")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    t_script = time.monotonic()
    budget = Budget(args.budget)
    info = machine()
    print("machine:", json.dumps(info, ensure_ascii=False), flush=True)
    samples: list[Sample] = []
    chains: list[ChainTiming] = []
    served_info: dict[str, dict[str, float]] = {}
    servers: list[Served] = []
    error: BaseException | None = None
    s3 = MotoS3Server()
    try:
        with tempfile.TemporaryDirectory(prefix="bf-latency-") as tmp_name:
            tmp = Path(tmp_name)
            base_env = set_env(tmp, s3.endpoint)
            archive = open_archive(load_settings())
            with new_session(archive.engine) as session:
                load_roster(session, path=ROSTER_CSV, actor=None)
                session.commit()
            install_hooks()

            from prefect.testing.utilities import prefect_test_harness

            t0 = time.monotonic()
            with prefect_test_harness(server_startup_timeout=180), \
                    get_client(sync_client=True) as client:
                print(f"Prefect test server up in {time.monotonic() - t0:.1f} s", flush=True)
                try:
                    print("(a)+(c) pause mode, poll_interval 0.5", flush=True)
                    for n in range(1, args.pause_filings + 1):
                        chains.append(pause_chain(client, archive, poll=0.5, chain=FULL_CHAIN,
                                                  label=f"#{n}", budget=budget,
                                                  samples=samples))
                    if not args.no_default_poll:
                        print("(a) pause mode, poll_interval 10 (Prefect's default)",
                              flush=True)
                        pause_chain(client, archive, poll=10, chain=SHORT_CHAIN,
                                    label="poll10", budget=budget, samples=samples)
                    if not args.no_suspend:
                        print("(b) suspend mode, brokerflow serve", flush=True)
                        served_info["1"] = suspend_run(
                            client, archive, base_env=base_env, tmp=tmp, poll_frequency=1,
                            chain=FULL_CHAIN, budget=budget, samples=samples,
                            servers=servers)
                        served_info["default"] = suspend_run(
                            client, archive, base_env=base_env, tmp=tmp, poll_frequency=None,
                            chain=SHORT_CHAIN, budget=budget, samples=samples,
                            servers=servers)
                except BaseException as exc:  # noqa: BLE001 - report what was measured
                    error = exc
                finally:
                    for served in servers:
                        served.stop()
    finally:
        s3.stop()
    cold = {} if args.no_suspend or error is not None else cold_imports(budget)

    rows = summarize(samples)
    print("\nresume_flow_run -> next step (seconds; clock starts before the resume call)")
    print(f"{'mode':<8} {'setting':<24} {'to':<26} {'n':>3} {'p50':>6} {'p90':>6} {'max':>6} "
          f"{'min':>6}  poll gap mean/max ms")
    for r in rows:
        print(f"{r['mode']:<8} {r['setting']:<24} {r['to']:<26} {r['n']:>3} {r['p50']:6.2f} "
              f"{r['p90']:6.2f} {r['max']:6.2f} {r['min']:6.2f}  {r['poll_gap_ms']:.0f}/"
              f"{r['poll_gap_max_ms']:.0f}")
        if r["phases_mean"]:
            print("    mean state times after resume: " + ", ".join(
                f"{k} +{v:.2f}" for k, v in r["phases_mean"].items()))
    if chains:
        print("\nwhole chains, pause mode, poll 0.5 (seconds)")
        for c in chains:
            t = c.times
            print(f"  {c.label}: total {c.total:.2f}, start->first form {c.to_first_wait:.2f}, "
                  f"sum of 6 resume latencies {c.latencies:.2f}, FIL {t.get('FIL archive', 0):.2f}"
                  f" (render {t.get('FIL render', 0):.2f}), FOP {t.get('FOP archive', 0):.2f}"
                  f" (render {t.get('FOP render', 0):.2f})")
    for key, value in served_info.items():
        print(f"serve (runner poll {key}): {value}")
    print(f"\ngoal: resume -> next form waiting < {GOAL_S:g} s")
    for r in rows:
        if r["to"] == "next form waiting":
            share = sum(s.latency < GOAL_S for s in samples if (s.mode, s.setting, s.final)
                        == (r["mode"], r["setting"], False))
            print(f"  {r['mode']} {r['setting']}: {share}/{r['n']} under; p50 "
                  f"{'met' if r['p50'] < GOAL_S else 'NOT met'}, p90 "
                  f"{'met' if r['p90'] < GOAL_S else 'NOT met'}, max "
                  f"{'met' if r['max'] < GOAL_S else 'NOT met'}")
    if cold:
        print("cold imports in a fresh process (what a resumed suspended run pays before "
              "Running), s: " + "; ".join(f"{k}: " + ", ".join(f"{v:.2f}" for v in vs)
                                        for k, vs in cold.items()))
    info["end_loadavg"] = load_now(" ")
    info["total_s"] = f"{time.monotonic() - t_script:.0f}"
    print(f"load average at end: {info['end_loadavg']}; total {info['total_s']} s")
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": info, "rows": rows, "samples": [s.__dict__ for s in samples],
             "chains": [c.__dict__ for c in chains], "served": served_info,
             "cold_imports": cold, "error": repr(error) if error else None},
            indent=1, ensure_ascii=False))
    if error is not None:
        print(f"\nstopped early: {error!r}", file=sys.stderr)
        if not isinstance(error, OutOfBudget | TimeoutError | AssertionError):
            raise error
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
