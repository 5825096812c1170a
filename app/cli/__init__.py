"""The ``brokerflow`` command line (SPEC §6.1), on Typer: one module per command group, thin
handlers that call the domains.

Exit codes: 0 success, 2 bad input (names file, row, column), 3 authentication failed or
access denied (logged), 4 not found, 5 storage failure, 6 the database needs a migration
start cannot make, 7 the database was busy too long (nothing written), 8 the database cannot
be reached (the message names it, without password, and how to fix it), 1 anything else (a
verify that found problems, a form not recorded in time).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from sqlalchemy.exc import OperationalError
from typer.exceptions import TyperException

from brokerflow.app.cli import (
    archive,
    attribution,
    audit,
    branch,
    documents,
    evaluation,
    filing,
    inbox,
    level,
    operations,
    payroll,
    policy,
    report,
    risk_fund,
    roster,
    stack,
    staff,
    templates,
    worker,
)
from brokerflow.kernel.db import is_busy, unavailable
from brokerflow.kernel.errors import BrokerflowError, DatabaseBusy

app = typer.Typer(name="brokerflow", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="Approval workflows and a serial-numbered document archive for "
                       "brokerage branch offices.")
app.add_typer(roster.app, name="roster", help="the roster of users")
app.add_typer(branch.app, name="branch", help="the branch registry (营业部)")
app.add_typer(archive.app, name="archive", help="the document archive")
app.add_typer(audit.app, name="audit", help="the hash-chained audit log")
app.add_typer(filing.app, name="filing", help="filing requests (报批)")
app.add_typer(payroll.app, name="payroll", help="monthly customer-manager payroll")
app.add_typer(attribution.app, name="attribution", help="client attribution (客户归属确认)")
app.add_typer(staff.app, name="staff", help="a CM's working life: titles, cases, notices")
app.add_typer(evaluation.app, name="evaluation", help="quarterly 360-degree evaluation (季度考评)")
app.add_typer(level.app, name="level", help="level changes (职级变动)")
app.add_typer(risk_fund.app, name="riskfund",
              help="risk fund (风险基金): deductions, refunds, client disputes")
app.add_typer(policy.app, name="policy", help="pay-rules versions (薪酬办法, approved by filing)")
app.add_typer(report.app, name="report",
              help="business reports (营业部业务月报, half-year and year reports)")
documents.register(app)
inbox.register(app)
stack.register(app)
operations.register(app)
worker.register(app)
templates.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; its exit code (errors are reported, never a traceback).

    Everything it (and every server ``up`` starts) writes is private: umask 077."""
    os.umask(0o077)
    try:
        result = app(args=list(sys.argv[1:] if argv is None else argv), prog_name="brokerflow",
                     standalone_mode=False)
    except BrokerflowError as exc:
        print(f"brokerflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except OperationalError as exc:
        cause = unavailable(exc)
        if cause is not None:
            print(f"brokerflow: {cause}", file=sys.stderr)
            return cause.exit_code
        if not is_busy(exc):
            raise
        busy = DatabaseBusy("the database is busy: another writer held it too long; nothing "
                            "was written, try again")
        print(f"brokerflow: {busy}", file=sys.stderr)
        return busy.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except TyperException as exc:  # usage errors: Typer prints them, exit 2
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return int(getattr(exc, "exit_code", 2))
    return int(result or 0)
