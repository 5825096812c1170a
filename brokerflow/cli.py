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

from brokerflow.errors import BadInput, BrokerflowError

Handler = Callable[[argparse.Namespace], int]


def _acting_user(args: argparse.Namespace) -> tuple[str, str]:
    user = args.as_user or os.environ.get("BROKERFLOW_USER", "")
    if not user:
        raise BadInput("no acting user: pass --as USER or set BROKERFLOW_USER", column="--as")
    return user, os.environ.get("BROKERFLOW_SECRET", "")


def _archive(args: argparse.Namespace) -> Any:
    from archive.service import open_archive
    from brokerflow.settings import load_settings

    return open_archive(load_settings())


# --------------------------------------------------------------------------- roster


def cmd_roster_load(args: argparse.Namespace) -> int:
    from brokerflow.db import new_session, open_database
    from brokerflow.roster import authenticate, load_roster, roster_is_empty
    from brokerflow.settings import load_settings

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
    from archive.serials import check_doc_type
    from brokerflow.render import DocumentRenderer, parse_document_data

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
    from archive.service import DocumentSpec

    path = Path(args.file)
    if not path.is_file():
        raise BadInput("no such file", file=str(path))
    archive = _archive(args)
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
    from archive.index import SearchFilter

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
    from brokerflow.models import ArchiveEntryPublic

    return ArchiveEntryPublic.model_validate(entry).model_dump(mode="json")


def _require_auditor(archive: Any, args: argparse.Namespace, action: str) -> None:
    from brokerflow.roster import ADMIN_ROLE

    actor = archive.authenticate(*_acting_user(args))
    if not (actor.is_head_office or ADMIN_ROLE in actor.roles):
        raise archive._deny(actor, action, "archive", "needs head office or role admin")


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
    from brokerflow.db import new_session
    from brokerflow.roster import roster_is_empty

    archive = _archive(args)
    with new_session(archive.engine) as session:
        empty = roster_is_empty(session)
    if not empty:  # disaster recovery on an empty database is open, like the first roster load
        _require_auditor(archive, args, "rebuild-index")
    report = archive.rebuild_index()
    for skipped in report.skipped:
        print(f"SKIPPED {skipped}")
    print(f"indexed {report.indexed} document(s); {report.voided_gaps} missing number(s) voided")
    return 0


# --------------------------------------------------------------------------- up


def cmd_up(args: argparse.Namespace) -> int:
    from brokerflow.stack import run_stack

    return run_stack(host=args.host, prefect_port=args.prefect_port, s3_port=args.s3_port)


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
