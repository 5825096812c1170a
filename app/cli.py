"""The ``brokerflow`` command line (SPEC §6.1).

Exit codes: 0 success, 2 bad input (names file, row, column), 3 authentication failed or
access denied (logged), 4 not found, 5 storage failure, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brokerflow.kernel.errors import BadInput, BrokerflowError

Handler = Callable[[argparse.Namespace], int]


def _acting_user(args: argparse.Namespace) -> tuple[str, str]:
    user = args.as_user or os.environ.get("BROKERFLOW_USER", "")
    if not user:
        raise BadInput("no acting user: pass --as USER or set BROKERFLOW_USER", column="--as")
    return user, os.environ.get("BROKERFLOW_SECRET", "")


def _archive(args: argparse.Namespace, *, prepare_bucket: bool = False) -> Any:
    """The archive; the bucket is created or checked only for commands that store objects
    (the others work while the object store is down, as far as they can)."""
    from brokerflow.archive.service import open_archive
    from brokerflow.kernel.settings import load_settings

    return open_archive(load_settings(), prepare_bucket=prepare_bucket)


# --------------------------------------------------------------------------- roster


def cmd_roster_load(args: argparse.Namespace) -> int:
    from brokerflow.kernel.db import new_session, open_database
    from brokerflow.kernel.roster import authenticate, load_roster, roster_is_empty
    from brokerflow.kernel.settings import load_settings

    settings = load_settings()
    engine = open_database(settings.database_url)
    path = Path(args.file)
    with new_session(engine) as session:
        actor = None
        if not roster_is_empty(session):
            user, secret = _acting_user(args)
            actor = authenticate(session, user_id=user, secret=secret)
        rows = load_roster(session, path=path, actor=actor)
        session.commit()
    print(f"loaded {len(rows)} users from {path}")
    return 0


# --------------------------------------------------------------------------- render


def cmd_render(args: argparse.Namespace) -> int:
    from brokerflow.kernel.render import DocumentRenderer, parse_document_data
    from brokerflow.kernel.vocabulary import check_doc_type

    doc_type = check_doc_type(args.type.upper(), column="TYPE")
    data_path = Path(args.data)
    try:
        raw = json.loads(data_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput("no such file", file=str(data_path)) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON: {exc.msg}", file=str(data_path), row=exc.lineno,
                       column=str(exc.colno)) from None
    doc = parse_document_data(raw, file=str(data_path))
    pdf = DocumentRenderer().render_pdf(doc_type, doc)
    Path(args.out).write_bytes(pdf)
    print(f"wrote {args.out} ({len(pdf)} bytes)")
    return 0


# --------------------------------------------------------------------------- archive


def cmd_archive_put(args: argparse.Namespace) -> int:
    from brokerflow.archive.service import DocumentSpec

    path = Path(args.file)
    if not path.is_file():
        raise BadInput("no such file", file=str(path))
    archive = _archive(args, prepare_bucket=True)
    actor = archive.authenticate(*_acting_user(args))
    spec = DocumentSpec(branch=args.branch, doc_type=args.type, subject=args.subject,
                        subject_key="", cm_id=args.cm, month=args.month, source=str(path))
    result = archive.put(path.read_bytes(), spec, actor=actor)
    if not result.created:
        print(f"already archived as {result.serial}; nothing new stored", file=sys.stderr)
    print(result.serial)
    return 0


def cmd_archive_get(args: argparse.Namespace) -> int:
    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    entry, data = archive.get(args.serial, actor=actor)
    if args.out:
        Path(args.out).write_bytes(data)
        print(f"{entry.serial}: wrote {args.out} ({len(data)} bytes, sha256 {entry.sha256})")
    elif sys.stdout.isatty():
        raise BadInput("refusing to write a PDF to a terminal; use --out FILE", column="--out")
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_archive_search(args: argparse.Namespace) -> int:
    from brokerflow.archive.index import SearchFilter

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    rows = archive.search(
        SearchFilter(serial=args.serial, doc_type=args.type, cm_id=args.cm, month=args.month,
                     status=args.status),
        actor=actor,
    )
    if args.format == "json":
        print(json.dumps([_entry_json(e) for e in rows], ensure_ascii=False, indent=2))
    else:
        for e in rows:
            print(f"{e.serial}\t{e.doc_type}\t{e.month}\t{e.cm_id or '-'}\t{e.status}\t{e.subject}")
        print(f"{len(rows)} document(s)", file=sys.stderr)
    return 0


def _entry_json(entry: Any) -> dict[str, Any]:
    from brokerflow.kernel.models import ArchiveEntryPublic

    return ArchiveEntryPublic.model_validate(entry).model_dump(mode="json")


def _require_auditor(archive: Any, args: argparse.Namespace, action: str) -> None:
    from brokerflow.kernel.identity import ADMIN_ROLE

    actor = archive.authenticate(*_acting_user(args))
    if not (actor.is_head_office or ADMIN_ROLE in actor.roles):
        raise archive.deny(actor, action, "archive", "needs head office or role admin")


def cmd_archive_verify(args: argparse.Namespace) -> int:
    archive = _archive(args)
    _require_auditor(archive, args, "verify")
    report = archive.verify()
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    print(f"checked {report.checked} document(s): "
          f"{'OK' if report.ok else f'{len(report.problems)} problem(s)'}")
    return 0 if report.ok else 1


def cmd_archive_rebuild_index(args: argparse.Namespace) -> int:
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.roster import roster_is_empty

    archive = _archive(args)
    with new_session(archive.engine) as session:
        empty = roster_is_empty(session)
    if not empty:  # disaster recovery on an empty database is open, like the first roster load
        _require_auditor(archive, args, "rebuild-index")
    report = archive.rebuild_index()
    for skipped in report.skipped:
        print(f"SKIPPED {skipped}")
    print(f"indexed {report.indexed} document(s); {report.voided_gaps} missing number(s) voided"
          + (f"; {report.voided_duplicates} late duplicate upload(s) voided"
             if report.voided_duplicates else ""))
    return 0


# --------------------------------------------------------------------------- audit


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from brokerflow.kernel.audit import verify_audit
    from brokerflow.kernel.db import new_session

    archive = _archive(args)
    _require_auditor(archive, args, "audit-verify")
    with new_session(archive.engine) as session:
        problems = verify_audit(session)
        from sqlmodel import func, select

        from brokerflow.kernel.models import AuditEvent

        count = session.exec(select(func.count()).select_from(AuditEvent)).one()
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"audit log: {count} row(s), {'intact' if not problems else 'BROKEN'}")
    return 0 if not problems else 1


# --------------------------------------------------------------------------- filing


def _filing_reader(archive: Any, args: argparse.Namespace) -> Any:
    return archive.authenticate(*_acting_user(args))


def _check_filing_visible(archive: Any, actor: Any, filing: Any) -> None:
    if not (actor.is_head_office or actor.branch == filing.branch):
        raise archive.deny(actor, "read", f"filing {filing.id}", "not of the filing's branch")


def cmd_filing_submit(args: argparse.Namespace) -> int:
    from brokerflow.approvals.filings import create_filing, validate_submission
    from brokerflow.archive.service import DocumentSpec
    from brokerflow.kernel.db import new_session

    archive = _archive(args, prepare_bucket=True)
    actor = archive.authenticate(*_acting_user(args))
    body, attachments = args.body or "", []
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise BadInput("no such file", file=str(path))
        data = path.read_bytes()
        if data.startswith(b"%PDF-"):
            validate_submission(branch=args.branch, kind=args.kind, subject=args.subject,
                                body=body, submitter=actor)
            spec = DocumentSpec(branch=args.branch, doc_type="EXT",
                                subject=f"附件：{args.subject}"[:200], subject_key="",
                                source=str(path))
            attachments.append(archive.put(data, spec, actor=actor).serial)
        else:
            try:
                body = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput("neither a PDF nor UTF-8 text", file=str(path)) from None
    with new_session(archive.engine) as session:
        filing = create_filing(session, branch=args.branch, kind=args.kind,
                               subject=args.subject, body=body, submitter=actor,
                               attachments=attachments)
        session.commit()
    print(f"filing {filing.id} submitted")
    if args.no_start:
        return 0
    run_id = start_deployment("filing-chain/filing-chain", {"filing_id": filing.id})
    print(f"flow run {run_id}")
    return 0


def start_deployment(name: str, parameters: dict[str, Any]) -> str:
    """Create a flow run of a served deployment; a clear error when Prefect is not up."""
    _use_local_stack_api()
    from prefect.deployments import run_deployment

    try:
        run = run_deployment(name, parameters=parameters, timeout=0)
    except Exception as exc:
        raise BrokerflowError(
            f"could not start {name} on the Prefect API ({exc}); is 'brokerflow up' running "
            "and PREFECT_API_URL set?"
        ) from exc
    return str(run.id)  # type: ignore[union-attr]


def _use_local_stack_api() -> None:
    """Without PREFECT_API_URL, talk to the stack 'brokerflow up' runs on this machine."""
    if os.environ.get("PREFECT_API_URL"):
        return
    from brokerflow.kernel.settings import brokerflow_home

    state = brokerflow_home() / "stack.json"
    if state.exists():
        os.environ["PREFECT_API_URL"] = json.loads(state.read_text())["prefect_api"]


def cmd_filing_status(args: argparse.Namespace) -> int:
    from brokerflow.approvals.chain import FILING_CHAIN, Waiting, progress
    from brokerflow.approvals.decisions import load_decisions
    from brokerflow.approvals.filings import get_filing, request_key
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import WaitingStep

    archive = _archive(args)
    actor = _filing_reader(archive, args)
    with new_session(archive.engine) as session:
        filing = get_filing(session, filing_id=args.id)
        decisions = load_decisions(session, request_key=request_key(args.id),
                                   revision=filing.revision, zone=archive.zone)
        waiting_row = session.get(WaitingStep, request_key(args.id))
    _check_filing_visible(archive, actor, filing)
    state = progress(FILING_CHAIN, decisions)
    waiting_on = None
    if isinstance(state, Waiting) and filing.status == "waiting":
        waiting_on = {"step": state.step.name, "label": state.step.label,
                      "may_sign": state.may_sign}
    elif filing.status == "returned":
        waiting_on = {"step": "resubmit", "label": "退回：提交人修改后重新提交或撤回",
                      "may_sign": (filing.submitter_id,)}
    elif filing.status == "waiting":
        waiting_on = {"step": "finish", "label": "all signatures in; the result document "
                      "(FOP) is not archived yet", "may_sign": ()}
    report: dict[str, Any] = {
        "id": filing.id, "branch": filing.branch, "kind": filing.kind,
        "subject": filing.subject, "submitter": filing.submitter_id,
        "revision": filing.revision, "status": filing.status,
        "request_serial": filing.current_serial, "result_serial": filing.result_serial,
        "flow_run_id": filing.flow_run_id,
        "waiting_on": waiting_on,
        "last_refusal": waiting_row.last_refusal if waiting_row else "",
        "run": _run_report(archive, filing.flow_run_id),
        "decisions": [d.__dict__ | {"departments": list(d.departments)} for d in decisions],
    }
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"filing {filing.id} [{filing.status}] revision {filing.revision}: {filing.subject}")
    print(f"  request {filing.current_serial or '-'}  result {filing.result_serial or '-'}")
    if waiting_on:
        print(f"  waiting on {waiting_on['step']} ({waiting_on['label']}): "
              f"{', '.join(waiting_on['may_sign'])}")
    if report["last_refusal"]:
        print(f"  last form refused: {report['last_refusal']}")
    if report["run"]:
        run = report["run"]
        flag = "ATTENTION " if run["needs_operator"] else ""
        print(f"  {flag}run {filing.flow_run_id}: {run['state']} — {run['note']}")
    for d in decisions:
        dept = f" [{d.department}]" if d.department else ""
        print(f"  {d.at} {d.step}{dept} {d.signer_id}: {d.decision} {d.opinion}")
    return 0


def _run_report(archive: Any, flow_run_id: str | None) -> dict[str, Any] | None:
    """The request's flow run as status commands show it (None when it has none)."""
    if not flow_run_id:
        return None
    _use_local_stack_api()
    from prefect.settings import PREFECT_API_URL

    from brokerflow.app.recovery import run_condition

    if not PREFECT_API_URL.value():  # never start a throwaway Prefect server for a status
        return {"state": "unknown", "note": "no Prefect API configured (PREFECT_API_URL)",
                "needs_operator": False}

    condition = run_condition(archive.engine, flow_run_id,
                              lease_seconds=archive.settings.run_lease_seconds,
                              max_recoveries=archive.settings.max_run_recoveries)
    return {"state": condition.state, "note": condition.note,
            "needs_operator": condition.needs_operator}


def cmd_filing_list(args: argparse.Namespace) -> int:
    from brokerflow.approvals.filings import list_filings
    from brokerflow.kernel.db import new_session

    archive = _archive(args)
    actor = _filing_reader(archive, args)
    branch = args.branch if actor.is_head_office else actor.branch
    with new_session(archive.engine) as session:
        filings = list_filings(session, branch=branch, status=args.status)
    for f in filings:
        print(f"{f.id}\t{f.branch}\t{f.status}\tr{f.revision}\t{f.current_serial or '-'}\t"
              f"{f.subject}")
    print(f"{len(filings)} filing(s)", file=sys.stderr)
    return 0


def cmd_filing_sign(args: argparse.Namespace) -> int:
    """Sign the waiting step with a form, as the Prefect UI would, and say what became of it.

    The signer's secret is checked here first (exit 3, nothing sent); the form then goes to
    the run (``approvals.submission.send_form``): exit 0 when counted, 3 when refused.
    """
    _use_local_stack_api()
    from uuid import UUID

    from brokerflow.approvals.filings import get_filing, request_key
    from brokerflow.approvals.submission import send_form
    from brokerflow.kernel.db import new_session

    user, secret = _acting_user(args)
    archive = _archive(args)
    archive.authenticate(user, secret)
    with new_session(archive.engine) as session:
        filing = get_filing(session, filing_id=args.id)
    if not filing.flow_run_id:
        raise BadInput(f"filing {args.id} has no running chain", column="ID")
    run_input: dict[str, Any] = {"signer": user, "secret": secret}
    if args.resubmit or args.withdraw:
        run_input |= {"action": "withdraw" if args.withdraw else "resubmit",
                      "subject": args.subject or "", "body": args.body or ""}
    else:
        run_input |= {"decision": args.decision, "opinion": args.opinion or ""}
        if args.departments is not None:
            run_input["countersign_departments"] = [
                d.strip() for d in args.departments.split(",") if d.strip()]
    sent = send_form(archive.engine, flow_run_id=UUID(filing.flow_run_id),
                     request_key=request_key(args.id), run_input=run_input,
                     wait=not args.no_wait, timeout=args.timeout)
    if args.no_wait:
        print(f"form sent to filing {args.id} (step {sent.step}); see "
              f"'brokerflow filing status {args.id}'")
    else:
        print(f"filing {args.id}: your form on step {sent.step} was counted ({sent.outcome})")
    return 0


def cmd_payroll_compute(args: argparse.Namespace) -> int:
    """Pure computation: no server, no database; prints the result (SPEC §6.3)."""
    from brokerflow.payroll.compute import (
        StderrProgress,
        compute_from_directory,
        result_csv,
        result_json,
        write_xlsx,
    )

    if args.format == "xlsx" and not args.out:
        raise BadInput("--format xlsx needs --out FILE", column="--out")
    progress = StderrProgress()
    try:
        result = compute_from_directory(month=args.month, data_dir=Path(args.data),
                                        policy=Path(args.policy), progress=progress)
    finally:
        progress.close()
    if args.format == "xlsx":
        write_xlsx(result, Path(args.out))
        print(f"wrote {args.out} ({len(result.lines)} lines)")
        return 0
    text = (json.dumps(result_json(result), ensure_ascii=False, indent=2) + "\n"
            if args.format == "json" else result_csv(result))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_payroll_reopen(args: argparse.Namespace) -> int:
    """A closed month may be corrected only after the branch manager reopens it (audited)."""
    from brokerflow.kernel.audit import append_audit
    from brokerflow.kernel.db import new_session
    from brokerflow.payroll.records import latest_run, set_status

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    if not args.reason.strip():
        raise BadInput("a reason is required", column="--reason")
    if "branch_manager" not in actor.roles or actor.branch != args.branch:
        raise archive.deny(actor, "reopen", f"payroll {args.branch} {args.month}",
                            "only the branch's branch manager may reopen a closed month")
    with new_session(archive.engine) as session:
        run = latest_run(session, branch=args.branch, month=args.month)
        if run is None or run.status != "closed":
            raise BadInput(f"{args.branch} {args.month} is not closed "
                           f"({run.status if run else 'never computed'})", column="--month")
        set_status(session, run=run, status="reopened")
        append_audit(session, actor_id=actor.user_id, action="payroll-reopened",
                     request_key=f"payroll:{args.branch}:{args.month}",
                     details={"revision": run.revision, "reason": args.reason.strip()})
        session.commit()
    print(f"{args.branch} {args.month} reopened; the next closing run computes revision "
          f"{run.revision + 1}")
    return 0


def cmd_payroll_close(args: argparse.Namespace) -> int:
    """Start the monthly-closing deployment for a branch and month."""
    parameters: dict[str, Any] = {"branch": args.branch, "month": args.month}
    if args.data:
        parameters["data_dir"] = str(Path(args.data).resolve())
    if args.policy:
        parameters["policy"] = str(Path(args.policy).resolve())
    print(f"flow run {start_deployment('monthly-closing/monthly-closing', parameters)}")
    return 0


def cmd_attribution_preregister(args: argparse.Namespace) -> int:
    from brokerflow.approvals.attributions import preregister
    from brokerflow.kernel.db import new_session

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    with new_session(archive.engine) as session:
        attribution = preregister(session, registrar=actor, cm_id=args.cm,
                                  client_name=args.client_name, id_number=args.id_number,
                                  asset_size=args.asset_size,
                                  hash_key=archive.settings.secret_key)
        session.commit()
    note = (f" — CONFLICT with attribution #{attribution.conflict_with}: the trading dept "
            "manager must resolve it" if attribution.status == "conflict" else "")
    print(f"attribution {attribution.id} {attribution.status}{note}")
    if not args.no_start:
        run = start_deployment("client-attribution/client-attribution",
                               {"attribution_id": attribution.id})
        print(f"flow run {run}")
    return 0


def _attribution_json(session: Any, attribution: Any) -> dict[str, Any]:
    from brokerflow.kernel.idnumbers import mask_last4
    from brokerflow.kernel.models import ClientIdentity

    identity = session.get(ClientIdentity, attribution.id_hash)
    return {
        "id": attribution.id, "client_id": attribution.client_id,
        "client_name": identity.name if identity else "",
        "id_number": mask_last4(identity.id_last4) if identity else "",
        "malicious": bool(identity and identity.malicious),
        "cm_id": attribution.cm_id, "branch": attribution.branch, "team": attribution.team,
        "status": attribution.status, "asset_size": attribution.asset_size,
        "conflict_with": attribution.conflict_with, "resolution": attribution.resolution,
        "confirmation_serial": attribution.confirmation_serial,
        "created_at": attribution.created_at.isoformat(),
        "effective_at": attribution.effective_at.isoformat() if attribution.effective_at
        else None,
        "ended_at": attribution.ended_at.isoformat() if attribution.ended_at else None,
    }


def _attribution_visible(actor: Any, attribution: Any) -> bool:
    from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, TEAM_LEADER_ROLES

    if actor.is_head_office:
        return True
    if actor.branch != attribution.branch:
        return False
    if actor.has_any(BRANCH_MANAGEMENT_ROLES | {"backoffice", "counter_clerk"}):
        return True
    if actor.has_any(TEAM_LEADER_ROLES) and attribution.team == actor.team:
        return True
    return bool(attribution.cm_id == actor.user_id)


def cmd_attribution_show(args: argparse.Namespace) -> int:
    from sqlmodel import col, or_, select

    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import Attribution

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    with new_session(archive.engine) as session:
        query = select(Attribution).where(Attribution.client_id == args.client_id)
        if args.client_id.isdigit():
            query = select(Attribution).where(or_(col(Attribution.client_id) == args.client_id,
                                                  col(Attribution.id) == int(args.client_id)))
        rows = [a for a in session.exec(query.order_by(col(Attribution.id)))
                if _attribution_visible(actor, a)]
        data = [_attribution_json(session, a) for a in rows]
    if not data:
        raise BrokerflowError(f"no attribution of {args.client_id} that you may see")
    for shown, row in zip(data, rows, strict=True):
        if row.status not in ("effective", "ended", "rejected", "returned"):
            shown["run"] = _run_report(archive, row.flow_run_id)
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0


def cmd_attribution_list(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from brokerflow.kernel.calendar import Month, month_end
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.models import Attribution

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    with new_session(archive.engine) as session:
        query = select(Attribution)
        if args.cm:
            query = query.where(Attribution.cm_id == args.cm)
        if args.status:
            query = query.where(Attribution.status == args.status)
        rows = [a for a in session.exec(query.order_by(col(Attribution.id)))
                if _attribution_visible(actor, a)]
        if args.month:
            try:
                start = month_end(Month.parse(args.month).minus(1), archive.zone)
                end = month_end(args.month, archive.zone)
            except ValueError:
                raise BadInput("month must be YYYY-MM", column="--month") from None
            rows = [a for a in rows if a.effective_at is not None
                    and start <= _utc(a.effective_at) < end]
        data = [_attribution_json(session, a) for a in rows]
    if args.format == "json":
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for a in data:
            print(f"{a['id']}\t{a['status']}\t{a['cm_id']}\t{a['client_id'] or '-'}\t"
                  f"{a['client_name']}\t{a['id_number']}")
    return 0


def _utc(at: Any) -> Any:
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_attribution_flag_malicious(args: argparse.Namespace) -> int:
    from brokerflow.approvals.attributions import flag_malicious
    from brokerflow.kernel.db import new_session

    archive = _archive(args)
    actor = archive.authenticate(*_acting_user(args))
    with new_session(archive.engine) as session:
        flag_malicious(session, client_id=args.client_id, reason=args.reason, actor=actor)
        session.commit()
    print(f"client {args.client_id} flagged as a malicious account opening; it never counts")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from brokerflow.app.demo import run_demo

    return run_demo(auto_approve=args.auto_approve,
                    export=Path(args.export) if args.export else None)


def cmd_web(args: argparse.Namespace) -> int:
    from brokerflow.app.web import serve_web

    serve_web(host=args.host, port=args.port)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from brokerflow.app.serving import PREFECT_YAML, serve_declared

    path = Path(args.prefect_yaml) if args.prefect_yaml else PREFECT_YAML
    if not path.is_file():
        raise BadInput("no such file", file=str(path))
    serve_declared(path)
    return 0


# --------------------------------------------------------------------------- up


def cmd_up(args: argparse.Namespace) -> int:
    from brokerflow.app.stack import run_stack

    return run_stack(host=args.host, prefect_port=args.prefect_port, s3_port=args.s3_port,
                     web_port=args.web_port)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brokerflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--as", dest="as_user", metavar="USER",
                        help="acting user (default $BROKERFLOW_USER); secret in $BROKERFLOW_SECRET")

    up = sub.add_parser("up", help="start the local stack (Prefect server, S3 endpoint, schema)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--prefect-port", type=int, default=4200)
    up.add_argument("--s3-port", type=int, default=9000)
    up.add_argument("--web-port", type=int, default=8400)
    up.set_defaults(handler=cmd_up)

    roster = sub.add_parser("roster", help="the roster of users").add_subparsers(
        dest="roster_command", required=True)
    load = roster.add_parser("load", parents=[acting], help="load users from CSV or YAML")
    load.add_argument("file")
    load.set_defaults(handler=cmd_roster_load)

    render = sub.add_parser("render", help="render one document template to PDF (preview)")
    render.add_argument("type", metavar="TYPE")
    render.add_argument("--data", required=True, metavar="FILE.json")
    render.add_argument("--out", required=True, metavar="FILE.pdf")
    render.set_defaults(handler=cmd_render)

    archive = sub.add_parser("archive", help="the document archive").add_subparsers(
        dest="archive_command", required=True)
    put = archive.add_parser("put", parents=[acting], help="archive an outside PDF")
    put.add_argument("file")
    put.add_argument("--branch", required=True)
    put.add_argument("--type", required=True)
    put.add_argument("--subject", required=True)
    put.add_argument("--cm")
    put.add_argument("--month", help="YYYY-MM the document is about (default: this month)")
    put.set_defaults(handler=cmd_archive_put)
    get = archive.add_parser("get", parents=[acting], help="fetch a document by serial")
    get.add_argument("serial")
    get.add_argument("--out")
    get.set_defaults(handler=cmd_archive_get)
    search = archive.add_parser("search", parents=[acting], help="search the index")
    search.add_argument("--serial", help="a whole serial, or a prefix of one")
    search.add_argument("--type")
    search.add_argument("--cm")
    search.add_argument("--month")
    search.add_argument("--status")
    search.add_argument("--format", choices=["text", "json"], default="text")
    search.set_defaults(handler=cmd_archive_search)
    verify = archive.add_parser("verify", parents=[acting],
                                help="re-hash stored objects against the index")
    verify.set_defaults(handler=cmd_archive_verify)
    rebuild = archive.add_parser("rebuild-index", parents=[acting],
                                 help="rebuild the index from the bucket alone")
    rebuild.set_defaults(handler=cmd_archive_rebuild_index)
    audit = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="audit_command", required=True)
    audit_verify = audit.add_parser("verify", parents=[acting],
                                    help="detect edited, deleted or reordered audit rows")
    audit_verify.set_defaults(handler=cmd_audit_verify)

    filing = sub.add_parser("filing", help="filing requests (报批)").add_subparsers(
        dest="filing_command", required=True)
    submit = filing.add_parser("submit", parents=[acting], help="submit a filing request")
    submit.add_argument("--branch", required=True)
    submit.add_argument("--kind", required=True,
                        help="marketing_plan | recruitment | assessment | pay_rules")
    submit.add_argument("--subject", required=True)
    body = submit.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="the request text")
    body.add_argument("--file", help="a UTF-8 text file (the request) or a PDF (attachment)")
    submit.add_argument("--no-start", action="store_true",
                        help="only record it; do not start the chain on Prefect")
    submit.set_defaults(handler=cmd_filing_submit)
    status = filing.add_parser("status", parents=[acting], help="where a filing stands")
    status.add_argument("id", type=int, metavar="ID")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.set_defaults(handler=cmd_filing_status)
    listing = filing.add_parser("list", parents=[acting], help="filings of your branch")
    listing.add_argument("--branch")
    listing.add_argument("--status")
    listing.set_defaults(handler=cmd_filing_list)
    sign = filing.add_parser("sign", parents=[acting],
                             help="sign the waiting step (what the Prefect UI form does)")
    sign.add_argument("id", type=int, metavar="ID")
    sign.add_argument("--decision", choices=["approve", "reject", "return"], default="approve")
    sign.add_argument("--opinion")
    sign.add_argument("--departments", help="channel dept: comma-separated countersigners")
    sign.add_argument("--resubmit", action="store_true", help="submitter: resubmit after return")
    sign.add_argument("--withdraw", action="store_true", help="submitter: withdraw after return")
    sign.add_argument("--subject")
    sign.add_argument("--body")
    sign.add_argument("--no-wait", action="store_true",
                      help="send the form and return without waiting for the outcome")
    sign.add_argument("--timeout", type=float, default=120.0,
                      help="seconds to wait for the run to take and record the form")
    sign.set_defaults(handler=cmd_filing_sign)

    payroll = sub.add_parser("payroll", help="monthly customer-manager payroll").add_subparsers(
        dest="payroll_command", required=True)
    compute = payroll.add_parser("compute", help="compute a month's payroll (no server needed)")
    compute.add_argument("--month", required=True, help="YYYY-MM")
    compute.add_argument("--data", required=True, metavar="DIR",
                         help="directory with staff.csv, clients.csv (or .xlsx), state.json")
    compute.add_argument("--policy", required=True, metavar="FILE", help="policy TOML")
    compute.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
    compute.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    compute.set_defaults(handler=cmd_payroll_compute)
    close = payroll.add_parser("close", help="start the monthly closing (sign-off) on Prefect")
    close.add_argument("--branch", required=True)
    close.add_argument("--month", required=True, help="YYYY-MM")
    close.add_argument("--data", metavar="DIR", help="CRM export directory "
                       "(default: crm/<branch>/<YYYY-MM>/ in the bucket)")
    close.add_argument("--policy", metavar="FILE")
    close.set_defaults(handler=cmd_payroll_close)
    reopen = payroll.add_parser("reopen", parents=[acting],
                                help="reopen a closed month for correction (branch manager)")
    reopen.add_argument("--branch", required=True)
    reopen.add_argument("--month", required=True, help="YYYY-MM")
    reopen.add_argument("--reason", required=True)
    reopen.set_defaults(handler=cmd_payroll_reopen)

    attribution = sub.add_parser("attribution", help="client attribution (客户归属确认)"
                                 ).add_subparsers(dest="attribution_command", required=True)
    prereg = attribution.add_parser("preregister", parents=[acting],
                                    help="预约登记 (back-office support)")
    prereg.add_argument("--cm", required=True)
    prereg.add_argument("--client-name", required=True)
    prereg.add_argument("--id-number", required=True,
                        help="18-digit resident ID; stored only as a keyed hash + last 4")
    prereg.add_argument("--asset-size", required=True)
    prereg.add_argument("--no-start", action="store_true",
                        help="only record it; do not start the verification on Prefect")
    prereg.set_defaults(handler=cmd_attribution_preregister)
    show = attribution.add_parser("show", parents=[acting],
                                  help="a client's attributions (by account, or #id)")
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.set_defaults(handler=cmd_attribution_show)
    alist = attribution.add_parser("list", parents=[acting], help="attributions")
    alist.add_argument("--cm")
    alist.add_argument("--month", help="effective in YYYY-MM")
    alist.add_argument("--status")
    alist.add_argument("--format", choices=["text", "json"], default="text")
    alist.set_defaults(handler=cmd_attribution_list)
    malicious = attribution.add_parser("flag-malicious", parents=[acting],
                                       help="恶意开户: the client never counts (trading manager)")
    malicious.add_argument("client_id", metavar="CLIENT_ID")
    malicious.add_argument("--reason", required=True)
    malicious.set_defaults(handler=cmd_attribution_flag_malicious)

    demo = sub.add_parser("demo", help="one filing, one attribution, one monthly closing")
    demo.add_argument("--auto-approve", action="store_true",
                      help="sign every step as the sample signers and print the serials")
    demo.add_argument("--export", metavar="DIR", help="write every archived PDF here")
    demo.set_defaults(handler=cmd_demo)

    web = sub.add_parser("web", help="serve the archive search page")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8400)
    web.set_defaults(handler=cmd_web)

    serve = sub.add_parser("serve", help="serve the deployments of prefect.yaml (a worker)")
    serve.add_argument("--prefect-yaml", metavar="FILE",
                       help="serve the deployments of this file (default: brokerflow's own)")
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BrokerflowError as exc:
        print(f"brokerflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
