"""``brokerflow demo``: one filing, one client attribution and one monthly closing on a stack.

Uses the running ``brokerflow up`` stack, or starts a temporary one (its own home directory,
free ports) and stops it at the end.  With ``--auto-approve`` every waiting step is signed in
turn as the sample signers, through the same Prefect resume a manager's click sends.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from brokerflow.app.s3server import free_port
from brokerflow.kernel.errors import BrokerflowError
from brokerflow.kernel.settings import brokerflow_home

if TYPE_CHECKING:
    from brokerflow.app.cli._progress import Steps

BRANCH = "SZ01"
#: Names with characters of CJK Extension A (䶮 U+4DAE) and B (𠀀 U+20000, 𪚥 U+2A6A5): the
#: demo's documents show that every character of a name renders (SPEC §9).
DEMO_CLIENT_NAME = "刘䶮"
DEMO_RARE_NAMES = "王\U00020000、李\U0002A6A5"
FILING_SIGNERS: list[dict[str, Any]] = [
    {"signer": "bo1", "decision": "approve", "opinion": "收悉，转渠道管理部"},
    {"signer": "ch1", "decision": "approve", "opinion": "请合规部、风险管理部会签",
     "countersign_departments": ["compliance", "risk"]},
    {"signer": "risk1", "decision": "approve", "opinion": "风险可控"},
    {"signer": "comp1", "decision": "approve", "opinion": "合规无异议"},
    {"signer": "bo2", "decision": "approve", "opinion": "已协助完成报备"},
    {"signer": "vp1", "decision": "approve", "opinion": "同意执行"},
]
ATTRIBUTION_SIGNERS: list[dict[str, Any]] = [
    {"signer": "cc1", "decision": "approve", "opinion": "客户签字核对无误"},
    {"signer": "tm1", "decision": "approve", "opinion": "归属无误"},
    {"signer": "fm1", "decision": "approve", "opinion": "同意"},
    {"signer": "bm1", "decision": "approve", "opinion": "同意"},
    {"signer": "tm1", "decision": "approve", "opinion": "已录入", "client_id": "DEMO-0001"},
]
CLOSING_SIGNERS: list[dict[str, Any]] = [
    {"signer": "ca1", "decision": "approve", "opinion": "复核无误"},
    {"signer": "dm1", "decision": "approve", "opinion": "同意"},
    {"signer": "bm1", "decision": "approve", "opinion": "同意发放"},
]


def _running_stack(home: Path) -> dict[str, Any] | None:
    state = home / "stack.json"
    if not state.exists():
        return None
    data: dict[str, Any] = json.loads(state.read_text())
    try:
        os.kill(int(data.get("pid", 0)), 0)
    except (OSError, ValueError):
        return None
    return data


def _start_temporary_stack() -> tuple[subprocess.Popen[bytes], Path, dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="brokerflow-demo-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BROKERFLOW_") and k != "PREFECT_API_URL"}
    # the demo's own stack is a development stack: sample users with known secrets
    env.update(BROKERFLOW_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               BROKERFLOW_DEV="1")
    log = (home / "up.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "brokerflow", "up", "--prefect-port", str(free_port()),
         "--s3-port", str(free_port()), "--web-port", str(free_port())],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        stack = _running_stack(home)
        if stack is not None:
            return process, home, stack
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise BrokerflowError(f"the temporary stack did not start; see {home / 'up.log'}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def demo_id_number(rng: random.Random) -> str:
    """A valid (GB 11643) but made-up resident ID number for the demo client."""
    from brokerflow.kernel.idnumbers import check_digit

    first17 = f"440305{rng.randint(1960, 2000)}{rng.randint(1, 12):02d}" \
              f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    return first17 + check_digit(first17)


def run_demo(*, auto_approve: bool, export: Path | None) -> int:
    from brokerflow.app.cli._progress import stepping
    from brokerflow.kernel.render import require_cjk_font

    require_cjk_font()
    home = brokerflow_home()
    stack = _running_stack(home)
    if stack is not None and not stack.get("development"):
        raise BrokerflowError("the running stack is not in development mode: the demo loads "
                              "sample users with known secrets, so it runs only on a stack "
                              "started with BROKERFLOW_DEV=1 (or, with none running, on its "
                              "own temporary one)")
    temporary = stack is None
    total = (1 if temporary else 0) + (5 if auto_approve else 3 + (1 if temporary else 0))
    with stepping(total) as steps:
        return _run(stack, home, steps, auto_approve=auto_approve, export=export)


def _run(stack: dict[str, Any] | None, home: Path, steps: Steps, *, auto_approve: bool,
         export: Path | None) -> int:
    temporary: subprocess.Popen[bytes] | None = None
    if stack is None:
        steps.next("starting a temporary stack")
        print("no running stack: starting a temporary one (stopped at the end) ...", flush=True)
        temporary, home, stack = _start_temporary_stack()
    os.environ["BROKERFLOW_HOME"] = str(home)
    os.environ["PREFECT_API_URL"] = stack["prefect_api"]
    try:
        steps.next("filing the sample pay rules")
        rules = _submit_pay_rules()
        if auto_approve:
            steps.next("signing the pay rules")
            _approve_everything(rules, steps=steps)
        else:
            _print_instructions(stack, rules)
            print("\nThe closing starts once the pay rules are approved ...", flush=True)
            steps.next("waiting for the pay rules to be approved in the Prefect UI")
            _wait_until_finished(rules)
        steps.next("uploading the sample CRM export and starting the runs")
        runs = _submit_everything(home)
        if not auto_approve:
            _print_instructions(stack, runs)
            if temporary is not None:
                print("Press Ctrl-C to stop the temporary stack.", flush=True)
                steps.next("waiting for signatures in the Prefect UI (Ctrl-C stops the stack)")
                try:
                    while temporary.poll() is None:
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            return 0
        steps.next("signing the filing, the attribution and the closing")
        _approve_everything(runs, steps=steps)
        steps.next("listing the archived documents")
        return _report(export)
    finally:
        if temporary is not None:
            _stop(temporary)


def _submit_pay_rules() -> dict[str, tuple[UUID, list[dict[str, Any]]]]:
    """File the sample pay rules (the packaged policy) through the filing chain: a closing
    uses only approved pay rules (SPEC §8.3)."""
    from brokerflow.app.runs import start_deployment
    from brokerflow.app.stack import ensure_roster
    from brokerflow.approvals.filings import create_filing
    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.calendar import previous_month, utcnow
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.roster import get_user_view
    from brokerflow.kernel.settings import load_settings
    from brokerflow.payroll.pay_rules import attach_pay_rules
    from brokerflow.payroll.policy import DEFAULT_POLICY

    archive = open_archive(load_settings())
    ensure_roster(archive.engine)
    _wait_for_deployments(["filing-chain/filing-chain"])
    month = previous_month(utcnow(), archive.zone)
    with new_session(archive.engine) as session:
        submitter = get_user_view(session, "bk1")
        assert submitter is not None
        filing = create_filing(session, branch=BRANCH, kind="pay_rules",
                               subject=f"营销团队薪酬办法（演示，自 {month} 起执行）",
                               body="报批本团队薪酬标准实施细则（附薪酬办法全文），经批准后执行。",
                               submitter=submitter)
        assert filing.id is not None
        attach_pay_rules(session, branch=BRANCH, filing_id=filing.id,
                         policy_text=DEFAULT_POLICY.read_text(encoding="utf-8"),
                         effective_month=month, file=str(DEFAULT_POLICY))
        session.commit()
    print(f"sample pay rules filed (filing #{filing.id}, effective {month})", flush=True)
    return {f"pay rules filing #{filing.id}": (UUID(start_deployment(
        "filing-chain/filing-chain", {"filing_id": filing.id})), FILING_SIGNERS)}


def _wait_until_finished(runs: dict[str, tuple[UUID, list[dict[str, Any]]]]) -> None:
    """Wait (a person signs in the Prefect UI) until every run of ``runs`` completed."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for label, (run_id, _) in runs.items():
            while True:
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    if not state.is_completed():
                        raise BrokerflowError(f"{label} ended {state.name}: {state.message}")
                    break
                time.sleep(1)


def _submit_everything(home: Path) -> dict[str, tuple[UUID, list[dict[str, Any]]]]:
    from brokerflow.app.runs import start_deployment
    from brokerflow.app.sample.crm import write_sample_export
    from brokerflow.app.stack import ensure_roster
    from brokerflow.approvals.attributions import preregister
    from brokerflow.approvals.filings import create_filing
    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.calendar import previous_month, utcnow
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.roster import get_user_view
    from brokerflow.kernel.settings import load_settings
    from brokerflow.payroll.records import latest_run, set_status
    from brokerflow.payroll.starts import issue_start_ticket

    settings = load_settings()
    archive = open_archive(settings)
    ensure_roster(archive.engine)
    _wait_for_deployments(["filing-chain/filing-chain", "client-attribution/client-attribution",
                           "monthly-closing/monthly-closing"])
    month = previous_month(utcnow(), archive.zone)
    with tempfile.TemporaryDirectory() as tmp:
        export = write_sample_export(Path(tmp), month=month)
        for name in ("staff.csv", "clients.csv"):
            archive.put_input(f"crm/{BRANCH}/{month}/{name}", (export / name).read_bytes(),
                              metadata={"source": "demo"}, content_type="text/csv")
    print(f"sample CRM export for {month} uploaded to crm/{BRANCH}/{month}/", flush=True)
    with new_session(archive.engine) as session:
        submitter = get_user_view(session, "bk1")
        assert submitter is not None
        filing = create_filing(session, branch=BRANCH, kind="marketing_plan",
                               subject="2027年度营销方案（演示）",
                               body=f"拟于2027年在合作银行网点开展驻点营销，由客户经理{DEMO_RARE_NAMES}负责，预算另附。",
                               submitter=submitter)
        attribution = preregister(session, registrar=submitter, cm_id="cm1",
                                  client_name=DEMO_CLIENT_NAME,
                                  id_number=demo_id_number(random.Random()),
                                  asset_size="800000", hash_key=settings.id_hash_key)
        accountant = get_user_view(session, "ca1")
        assert accountant is not None
        ticket = issue_start_ticket(session, actor=accountant, branch=BRANCH, month=month)
        closed = latest_run(session, branch=BRANCH, month=month)
        if closed is not None and closed.status == "closed":  # an earlier demo closed it
            set_status(session, run=closed, status="reopened")
        session.commit()
    return {
        f"filing #{filing.id}": (UUID(start_deployment(
            "filing-chain/filing-chain", {"filing_id": filing.id})), FILING_SIGNERS),
        f"client attribution #{attribution.id}": (UUID(start_deployment(
            "client-attribution/client-attribution", {"attribution_id": attribution.id})),
            ATTRIBUTION_SIGNERS),
        f"monthly closing {BRANCH} {month}": (UUID(start_deployment(
            "monthly-closing/monthly-closing",
            {"branch": BRANCH, "month": month, "attribution_source": "crm",
             "ticket": ticket})),
            CLOSING_SIGNERS),
    }


def _wait_for_deployments(names: list[str], timeout: float = 120) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in names:
            while True:
                try:
                    client.read_deployment_by_name(name)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise BrokerflowError(f"deployment {name} is not served") from None
                    time.sleep(0.5)


def _print_instructions(stack: dict[str, Any],
                        runs: dict[str, tuple[UUID, list[dict[str, Any]]]]) -> None:
    print(f"\nOpen the Prefect UI: {stack['prefect_ui']}  (archive page: {stack.get('web')})")
    print("Each run waits (Suspended) for a form; open it and click Resume, then fill in:")
    for label, (run_id, signers) in runs.items():
        print(f"\n{label}: {stack['prefect_ui']}/runs/flow-run/{run_id}")
        for number, form in enumerate(signers, start=1):
            extra = {k: v for k, v in form.items()
                     if k not in ("signer", "decision", "opinion")}
            print(f"  {number}. signer {form['signer']}, secret pw-{form['signer']}, "
                  f"decision {form['decision']}" + (f", {extra}" if extra else ""))


def _approve_everything(runs: dict[str, tuple[UUID, list[dict[str, Any]]]],
                        timeout: float = 270, *, steps: Steps | None = None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run
    from prefect.input import keyset_from_paused_state

    pending = {label: list(signers) for label, (_, signers) in runs.items()}
    signatures, signed = sum(len(signers) for signers in pending.values()), 0
    answered: dict[str, set[str]] = {label: set() for label in runs}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while pending:
            if time.monotonic() > deadline:
                raise BrokerflowError(f"demo runs did not finish in time: {sorted(pending)}")
            for label, (run_id, _) in runs.items():
                if label not in pending:
                    continue
                state = client.read_flow_run(run_id).state
                if state is None:
                    continue
                if state.is_final():
                    if not state.is_completed():
                        raise BrokerflowError(f"{label} ended {state.name}: {state.message}")
                    del pending[label]
                    continue
                key = str(state.state_details.pause_key) if state.is_paused() else ""
                if not key or key in answered[label] or not pending[label]:
                    continue
                try:
                    client.read_flow_run_input(run_id, keyset_from_paused_state(state)["schema"])
                except Exception:
                    continue  # the form is not saved yet
                form = pending[label].pop(0)
                resume_flow_run(run_id, run_input={**form, "secret": f"pw-{form['signer']}"})
                answered[label].add(key)
                print(f"{label}: signed by {form['signer']} ({form['decision']})", flush=True)
                signed += 1
                if steps is not None:
                    steps.note(f"signing: {signed}/{signatures} signatures ({label})")
            time.sleep(0.3)


def _report(export: Path | None) -> int:
    from brokerflow.archive.index import SearchFilter
    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.settings import load_settings

    archive = open_archive(load_settings())
    auditor = archive.authenticate("comp1", "pw-comp1")
    entries = archive.search(SearchFilter(branch=BRANCH, limit=100_000), actor=auditor)
    print("\narchived documents (serial, type, subject):")
    for entry in entries:
        print(f"  {entry.serial}  {entry.doc_type}  {entry.subject}")
    if export is not None:
        export.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            _, data = archive.get(entry.serial, actor=auditor)
            (export / f"{entry.serial}.pdf").write_bytes(data)
        print(f"exported {len(entries)} PDF(s) to {export}")
    return 0
