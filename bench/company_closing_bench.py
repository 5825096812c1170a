"""Company closing benchmark: N branches x M CMs closed through work pool brokerflow by two
process workers, against the same compute + renders + stores without Prefect.

Run: .venv/bin/python bench/company_closing_bench.py [--branches 3] [--cms 20]
     [--max-parallel 2] [--budget 3600] [--json FILE]

Set-up (all on this machine, torn down at the end): a PostgreSQL cluster from the Debian
server binaries (two databases: brokerflow's and Prefect's), moto's S3 server, one
``prefect server start`` on PostgreSQL, ``brokerflow deploy``, and two ``brokerflow worker``
processes, each with its own BROKERFLOW_HOME (two "machines").  Development mode: the sign-offs
use the roster's static secrets, and the closings count clients by the CRM's attribution
column (as ``payroll compute`` and the bare path do).

Data: per branch B001..BNNN a roster of chief accountant, deputy manager, branch manager and
trading manager; a CRM export of M CMs x 100 clients x 3 months (bench/payroll_bench.py's
generator, seeded per branch) uploaded to crm/<branch>/2026-10/; and an effective attribution
for every client opened in 2026-10, so that each CM gets a CML (客户确认清单) as in production.

1. Bare: per branch compute_from_directory, the CMLs (same data, rendered and archived as a
   batch, the renders spread over the cores by the renderer), PAY and PAS (flows/closing.py's
   report_data) through Archive.archive_rendered*, branch after branch in this process; no
   Prefect, no payroll tables.  (Two bare processes side by side hung in the renderer's
   worker pool started from a forkserver child, so the bare path runs here.)
2. Flow: one run of deployment monthly-closing-all (max_parallel branch closings at work);
   a signer thread sends each sign-off as soon as its form waits.  Wall time from the start
   of that run to the last branch closed; documents/s; per-branch time (its run created ->
   completed); peak RSS of each worker (its process group: worker, forkserver, run processes,
   render workers, sampled every 0.5 s).

Not a test: prints figures only.  Goal (issue 12): 100 x 100 in <= 30 min and <= 1.2x bare.
"""

from __future__ import annotations

import argparse
import contextvars
import csv
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import load_now  # noqa: E402

MONTH = "2026-10"
ROLES = (("ca", "chief_accountant", "主办会计"), ("dm", "deputy_manager", "副经理"),
         ("bm", "branch_manager", "营业部经理"), ("tm", "trading_manager", "交易部经理"))
SIGNER_OF = {"chief_accountant": "ca", "deputy_manager": "dm", "branch_manager": "bm"}
GOAL_SECONDS = 30 * 60
GOAL_RATIO = 1.2


def branch_codes(n: int) -> list[str]:
    return [f"B{i:03d}" for i in range(1, n + 1)]


# --------------------------------------------------------------------------- services


class Postgres:
    """A throwaway cluster from the installed server binaries (as tests/conftest.py)."""

    def __init__(self, base: Path) -> None:
        from brokerflow.app.s3server import free_port

        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise SystemExit("no PostgreSQL server installed (apt-get install postgresql)")
        self.bindir, self.base = bins[-1].parent, base
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        base.mkdir(parents=True)
        (base / "sock").mkdir()
        if self.run_as:
            base.parent.chmod(0o755)
            base.chmod(0o777)
            subprocess.run(["chown", "-R", "postgres", str(base)], check=True)
        self.port = free_port()
        subprocess.run([*self.run_as, str(self.bindir / "initdb"), "-D", str(base / "data"),
                        "-A", "trust", "-U", "brokerflow", "--no-sync"], check=True,
                       capture_output=True)
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(base / "data"),
                        "-w", "-l", str(base / "log"), "-o",
                        f"-p {self.port} -k {base / 'sock'} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=300", "start"],
                       check=True, capture_output=True)
        self.url = f"postgresql+psycopg://brokerflow@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D",
                        str(self.base / "data"), "-m", "fast", "stop"], capture_output=True)


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    from brokerflow.app.s3server import free_port, wait_for_http

    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    wait_for_http(f"http://127.0.0.1:{port}/moto-api/", timeout=60)
    return process, f"http://127.0.0.1:{port}"


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in process group ``pgid``."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, pgids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pgids, self.peak = pgids, dict.fromkeys(pgids, 0)
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            for name, pgid in self.pgids.items():
                self.peak[name] = max(self.peak[name], group_rss(pgid))


# --------------------------------------------------------------------------- data


def write_roster(path: Path, branches: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "name", "roles", "branch", "team", "supervisor_id", "secret"])
        writer.writerow(["admin1", "系统管理员", "admin", "HQ", "", "", "pw-admin1"])
        for branch in branches:
            for prefix, role, label in ROLES:
                user = f"{prefix}{branch.lower()}"
                writer.writerow([user, f"{label} {branch}", role, branch, "", "", f"pw-{user}"])


def make_exports(root: Path, branches: list[str], cms: int) -> dict[str, Path]:
    from payroll_bench import generate

    out = {}
    for number, branch in enumerate(branches, start=1):
        out[branch] = root / branch
        generate(out[branch], n_cms=cms, seed=number)
        for name in ("staff.csv", "clients.csv"):  # CM ids unique across branches
            path = out[branch] / name
            path.write_text(path.read_text(encoding="utf-8").replace(",CM", f",{branch}CM"),
                            encoding="utf-8")
    return out


def add_cms(archive: Any, exports: dict[str, Path]) -> int:
    """Every CM of the exports on the roster (a bulk insert: they never log in here)."""
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import User, UserRole

    count = 0
    for branch, directory in exports.items():
        with (directory / "staff.csv").open(newline="", encoding="utf-8") as handle:
            people = {row["cm_id"]: row["name"] for row in csv.DictReader(handle)}
        with new_session(archive.engine) as session:
            session.add_all(User(user_id=cm_id, name=name, branch=branch, team="T1",
                                 secret_hash="!no-login") for cm_id, name in people.items())
            session.flush()
            session.add_all(UserRole(user_id=cm_id, role="cm") for cm_id in people)
            session.commit()
        count += len(people)
    return count


def upload_and_attribute(archive: Any, exports: dict[str, Path]) -> int:
    """The exports into crm/<branch>/<month>/; an effective attribution (with its client
    identity) for each client opened in the month.  The number of attributions."""
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import Attribution, ClientIdentity

    effective_at = datetime(2026, 10, 20, 4, 0, tzinfo=UTC)
    count = 0
    for branch, directory in exports.items():
        for name in ("staff.csv", "clients.csv"):
            archive.put_input(f"crm/{branch}/{MONTH}/{name}", (directory / name).read_bytes(),
                              metadata={"uploaded-by": "bench"}, content_type="text/csv")
        identities, attributions = [], []
        with (directory / "clients.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["month"] != MONTH or not row["client_id"].startswith("N"):
                    continue
                id_hash = hashlib.sha256(f"{branch}:{row['client_id']}".encode()).hexdigest()
                identities.append(ClientIdentity(id_hash=id_hash, name=f"客户{row['client_id']}",
                                                 id_last4=id_hash[-4:].upper(),
                                                 client_id=row["client_id"]))
                attributions.append(Attribution(
                    id_hash=id_hash, cm_id=row["cm_id"], branch=branch, asset_size=row["assets"],
                    status="effective", client_id=row["client_id"],
                    registered_by=f"tm{branch.lower()}", effective_at=effective_at))
        with new_session(archive.engine) as session:
            session.add_all(identities)
            session.flush()
            session.add_all(attributions)
            session.commit()
        count += len(attributions)
    return count


# --------------------------------------------------------------------------- bare


def _cml_documents(archive: Any, branch: str) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """The CML specs and data of ``branch`` (the query of flows/confirmation_lists.py)."""
    from collections import defaultdict

    from sqlmodel import col, select

    from brokerflow.archive.service import DocumentSpec
    from brokerflow.kernel.calendar import Month, local_minute, month_end
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.idnumbers import mask_last4
    from brokerflow.kernel.models import Attribution, ClientIdentity
    from brokerflow.kernel.roster import get_user_view

    start = month_end(Month.parse(MONTH).minus(1), archive.zone)
    end = month_end(MONTH, archive.zone)
    by_cm: dict[str, list[dict[str, str]]] = defaultdict(list)
    with new_session(archive.engine) as session:
        rows = session.exec(select(Attribution, ClientIdentity).join(
            ClientIdentity, ClientIdentity.id_hash == Attribution.id_hash)  # type: ignore[arg-type]
            .where(Attribution.branch == branch, col(Attribution.effective_at).is_not(None))
            .order_by(col(Attribution.effective_at))).all()
        actor = get_user_view(session, f"tm{branch.lower()}")
    for attribution, identity in rows:
        if start <= attribution.effective_at < end:
            by_cm[attribution.cm_id].append({
                "name": identity.name, "masked_id": mask_last4(identity.id_last4),
                "effective_at": local_minute(attribution.effective_at, archive.zone),
                "asset_size": attribution.asset_size})
    specs, documents = [], []
    for cm_id, clients in sorted(by_cm.items()):
        subject = f"{MONTH} 客户确认清单：{cm_id}"
        documents.append({"branch": branch, "subject": subject, "body": {
            "cm_id": cm_id, "cm_name": cm_id, "month": MONTH, "clients": clients}})
        specs.append(DocumentSpec(branch=branch, doc_type="CML", subject=subject,
                                  subject_key=f"bare-cml:{branch}:{MONTH}:{cm_id}", cm_id=cm_id,
                                  month=MONTH, source="bench bare"))
    return specs, documents, actor


def bare_branch(branch: str, directory: str) -> tuple[str, float, int]:
    """compute + CMLs + PAY + PAS of one branch without Prefect; (branch, seconds, docs)."""
    from brokerflow.approvals.chain import PAYROLL_CHAIN
    from brokerflow.archive.service import DocumentSpec, open_archive
    from brokerflow.flows.archive_document import shared_renderer
    from brokerflow.flows.closing import report_data
    from brokerflow.kernel.models import PayrollRun
    from brokerflow.kernel.roster import get_user_view
    from brokerflow.kernel.settings import load_settings
    from brokerflow.payroll.compute import compute_from_directory, line_json
    from brokerflow.payroll.policy import DEFAULT_POLICY

    archive = open_archive(load_settings(), prepare_bucket=False)
    renderer = shared_renderer()
    t0 = time.perf_counter()
    result = compute_from_directory(month=MONTH, data_dir=Path(directory), policy=DEFAULT_POLICY)
    specs, documents, clerk = _cml_documents(archive, branch)
    docs = 0
    if specs:
        if hasattr(archive, "archive_rendered_batch") and hasattr(renderer, "render_pdfs"):
            archive.archive_rendered_batch(specs, lambda jobs: renderer.render_pdfs(
                [(specs[i].doc_type, {**documents[i], "serial": s}) for i, s in jobs],
                return_exceptions=True), actor=clerk)
        else:
            for spec, data in zip(specs, documents, strict=True):
                archive.archive_rendered(spec, lambda serial, d=data: renderer.render_pdf(
                    "CML", {**d, "serial": serial}), actor=clerk)
        docs += len(specs)
    from brokerflow.kernel.db import new_session

    with new_session(archive.engine) as session:
        preparer = get_user_view(session, f"ca{branch.lower()}")
    lines = [line_json(line) | {"name": line.name, "position": line.position,
                                "history_flags": []} for line in result.lines]
    run = PayrollRun(branch=branch, month=MONTH, revision=1, status="draft", flow_run_id="",
                     totals=json.dumps({k: f"{v:.2f}" for k, v in result.totals.items()}))

    def archive_doc(doc_type: str, data: dict[str, Any], suffix: str) -> str:
        spec = DocumentSpec(branch=branch, doc_type=doc_type, subject=data["subject"],
                            subject_key=f"bare-payroll:{branch}:{MONTH}{suffix}", revision=1,
                            month=MONTH, source="bench bare")
        return archive.archive_rendered(spec, lambda serial: renderer.render_pdf(
            doc_type, {**data, "serial": serial}), actor=preparer).serial

    pay = archive_doc("PAY", report_data(run, lines, signatures=[]), "")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    signatures = [{"role": step.label, "name": f"{role} {branch}", "decision": "approve",
                   "time": now, "opinion": "同意"}
                  for step, role in zip(PAYROLL_CHAIN.steps, ("ca", "dm", "bm"), strict=True)]
    data = report_data(run, lines, signatures=signatures, draft_serial=pay)
    data["subject"] = f"{MONTH} 客户经理薪酬（已签批，报经纪业务综合室备案）"
    archive_doc("PAS", data, ":signed")
    return branch, time.perf_counter() - t0, docs + 2


def run_bare(exports: dict[str, Path]) -> tuple[float, list[float], int]:
    """Every branch in turn in this process (the CML renders in the renderer's own worker
    processes, as in the flow); total seconds, seconds per branch, documents."""
    t0 = time.perf_counter()
    done = [bare_branch(branch, str(directory)) for branch, directory in exports.items()]
    return time.perf_counter() - t0, [seconds for _, seconds, _ in done], sum(
        d for _, _, d in done)


# --------------------------------------------------------------------------- flow


class Signer(threading.Thread):
    """Sends each waiting sign-off form as soon as the closing waits for it."""

    def __init__(self, engine: Any, api_url: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.sent, self.errors = engine, set(), []  # type: ignore[var-annotated]
        self.api_url = api_url
        self.stop_event = threading.Event()
        self.pool = ThreadPoolExecutor(4)

    def _send(self, key: tuple[str, int, str], run_id: str) -> None:
        from uuid import UUID

        from brokerflow.approvals.submission import send_form

        signer = f"{SIGNER_OF[key[2]]}{key[0].split(':')[1].lower()}"
        try:
            send_form(self.engine, flow_run_id=UUID(run_id), request_key=key[0], wait=False,
                      timeout=600, run_input={"signer": signer, "secret": f"pw-{signer}",
                                              "decision": "approve", "opinion": "同意"})
        except Exception as exc:  # noqa: BLE001 - reported, tried again
            self.errors.append(f"{key}: {exc!r}")
            self.sent.discard(key)

    def run(self) -> None:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            self._loop()

    def _loop(self) -> None:
        from sqlmodel import col, select

        from brokerflow.kernel.db import new_session
        from brokerflow.kernel.models import PayrollRun, WaitingStep

        while not self.stop_event.wait(0.2):
            with new_session(self.engine) as session:
                waiting = [(w.request_key, w.revision, w.step) for w in session.exec(
                    select(WaitingStep).where(col(WaitingStep.request_key).startswith("payroll:")))]
                runs = {f"payroll:{r.branch}:{r.month}": r.flow_run_id
                        for r in session.exec(select(PayrollRun))}
            for key in waiting:
                if key not in self.sent and runs.get(key[0]):
                    self.sent.add(key)
                    self.pool.submit(contextvars.copy_context().run, self._send, key,
                                     runs[key[0]])


def closed_count(engine: Any) -> int:
    from sqlmodel import select

    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import PayrollRun

    with new_session(engine) as session:
        return sum(1 for r in session.exec(select(PayrollRun)) if r.status == "closed")


def document_count(engine: Any) -> dict[str, int]:
    from sqlmodel import select

    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import ArchiveEntry

    counts: dict[str, int] = {}
    with new_session(engine) as session:
        for entry in session.exec(select(ArchiveEntry)):
            counts[entry.doc_type] = counts.get(entry.doc_type, 0) + 1
    return counts


def branch_times() -> list[float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["company-closing"])), limit=200)
    return sorted((r.end_time - r.created).total_seconds() for r in runs
                  if r.end_time and r.created)


# --------------------------------------------------------------------------- main


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "nproc": str(os.cpu_count()), "python": platform.python_version(),
            "loadavg": load_now(" ")}


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=3)
    parser.add_argument("--cms", type=int, default=20)
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--budget", type=float, default=3600, help="seconds for the flow part")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the clean-up below still runs
    info = machine()
    print("machine:", json.dumps(info, ensure_ascii=False), flush=True)
    figures: dict[str, Any] = {"machine": info, "branches": args.branches, "cms": args.cms,
                               "max_parallel": args.max_parallel}
    tmp = Path(tempfile.mkdtemp(prefix="bf-company-bench-"))
    postgres = moto = None
    from tests.support.services import PrefectServer
    from tests.support.workers import WorkerProcess, create_database, deploy

    server: PrefectServer | None = None
    workers: list[WorkerProcess] = []
    try:
        postgres = Postgres(Path(tempfile.mkdtemp(prefix="bf-company-bench-pg-")) / "pg")
        brokerflow_db = create_database(postgres.url, "brokerflow")
        prefect_db = create_database(postgres.url, "prefect").replace("+psycopg", "+asyncpg")
        moto, endpoint = start_moto(tmp / "moto.log")
        env = {"BROKERFLOW_HOME": str(tmp / "home"), "BROKERFLOW_DATABASE_URL": brokerflow_db,
               "BROKERFLOW_S3_ENDPOINT": endpoint, "BROKERFLOW_S3_ACCESS_KEY": "bench",
               "BROKERFLOW_S3_SECRET_KEY": "bench-secret-0123456789",
               "BROKERFLOW_S3_BUCKET": "bf-company-bench", "BROKERFLOW_DEV": "1",
               "BROKERFLOW_SECRET_KEY": "bench-secret-key-not-for-production-0123",
               "BROKERFLOW_ID_HASH_KEY": "bench-id-hash-key-not-for-production-01",
               "BROKERFLOW_AUDIT_KEY": "bench-audit-key-not-for-production-0123",
               "BROKERFLOW_TOTP_KEY": "bench-totp-key-not-for-production-01234"}
        os.environ.update(env)
        from brokerflow.archive.service import open_archive
        from brokerflow.kernel.db import new_session
        from brokerflow.kernel.roster import load_roster
        from brokerflow.kernel.settings import load_settings

        archive = open_archive(load_settings())
        branches = branch_codes(args.branches)
        t0 = time.perf_counter()
        write_roster(tmp / "roster.csv", branches)
        with new_session(archive.engine) as session:
            load_roster(session, path=tmp / "roster.csv", actor=None)
            session.commit()
        exports = make_exports(tmp / "crm", branches, args.cms)
        add_cms(archive, exports)
        attributed = upload_and_attribute(archive, exports)
        figures["setup_s"] = time.perf_counter() - t0
        print(f"set-up: {len(branches)} branches x {args.cms} CMs x 100 clients x 3 months, "
              f"{attributed} attributions (CML clients) in {figures['setup_s']:.1f} s",
              flush=True)

        # 1. bare, in this process
        bare_total, bare_each, bare_docs = run_bare(exports)
        figures["bare"] = {"total_s": bare_total, "docs": bare_docs,
                           "per_branch_s": [min(bare_each), statistics.median(bare_each),
                                            max(bare_each)]}
        print(f"bare: {bare_total:.1f} s for {bare_docs} documents ({bare_docs / bare_total:.2f}"
              f" docs/s); per branch (one process) min/median/max "
              f"{min(bare_each):.1f}/{statistics.median(bare_each):.1f}/{max(bare_each):.1f} s",
              flush=True)

        # 2. the flow through two workers
        os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_db
        server = PrefectServer(tmp / "prefect-server").start()
        del os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
        child_env = {**os.environ, "PREFECT_API_URL": server.api_url,
                     "PREFECT_HOME": str(tmp / "cli-prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}
        deploy(child_env)
        workers = [WorkerProcess(name, child_env, tmp / "machines").start()
                   for name in ("m1", "m2")]
        os.environ["PREFECT_API_URL"] = server.api_url
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from brokerflow.app.runs import start_deployment

        api = temporary_settings(updates={PREFECT_API_URL: server.api_url})
        api.__enter__()

        sampler = RssSampler({w.name: w.pid for w in workers})
        sampler.start()
        signer = Signer(archive.engine, server.api_url)
        signer.start()
        before = document_count(archive.engine)
        t_flow = time.perf_counter()
        start_deployment("monthly-closing-all/monthly-closing-all", {
            "month": MONTH, "max_parallel": args.max_parallel, "attribution_source": "crm",
            "check_seconds": 0.5})
        deadline = time.monotonic() + args.budget
        closed = 0
        while closed < len(branches) and time.monotonic() < deadline:
            time.sleep(1)
            closed = closed_count(archive.engine)
        flow_total = time.perf_counter() - t_flow
        signer.stop_event.set()
        sampler.stop_event.set()
        after = document_count(archive.engine)
        flow_docs = sum(after.values()) - sum(before.values())
        each = branch_times()
        figures["flow"] = {
            "total_s": flow_total, "closed": closed, "docs": flow_docs,
            "docs_by_type": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "per_branch_s": [min(each), statistics.median(each), max(each)] if each else [],
            "peak_rss": sampler.peak, "signer_errors": signer.errors[:5]}
        print(f"flow: {closed}/{len(branches)} branches closed in {flow_total:.1f} s, "
              f"{flow_docs} documents ({flow_docs / flow_total:.2f} docs/s) "
              f"{figures['flow']['docs_by_type']}", flush=True)
        if each:
            print(f"  per branch (run created -> completed) min/median/max "
                  f"{min(each):.1f}/{statistics.median(each):.1f}/{max(each):.1f} s", flush=True)
        print("  peak RSS per worker (process group): " + ", ".join(
            f"{k} {v / 1024**2:.0f} MiB" for k, v in sampler.peak.items()), flush=True)
        if signer.errors:
            print(f"  signer retries: {len(signer.errors)}: {signer.errors[:3]}", flush=True)
        ratio = flow_total / bare_total
        figures["ratio"] = ratio
        print(f"flow / bare = {ratio:.2f}x (goal <= {GOAL_RATIO}x: "
              f"{'met' if ratio <= GOAL_RATIO else 'NOT met'}); "
              f"{len(branches) * args.cms} CMs in {flow_total / 60:.1f} min", flush=True)
    finally:
        for worker in workers:
            worker.stop()
        if server is not None:
            server.stop()
        if moto is not None:
            os.killpg(moto.pid, signal.SIGTERM)
            moto.wait(timeout=30)
        if postgres is not None:
            postgres.stop()
            shutil.rmtree(postgres.base.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    info["end_loadavg"] = load_now(" ")
    print(f"load average at end: {info['end_loadavg']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
